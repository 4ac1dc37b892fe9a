"""Networks of DeepMT-DR (one file per part) and the trainable methods built from them.

* :mod:`~deepmt.models.isr` – ISR subnet (:class:`ISRNet`)
* :mod:`~deepmt.models.segmentation` – lesion segmentation U-Net (:class:`LesionUNet`)
* :mod:`~deepmt.models.grading` – ResNet-18 + SPP grader (:class:`GradingNet`)
* :mod:`~deepmt.models.visualization` – Grad-CAM visualization map with lesion-oriented feature selection
* :mod:`~deepmt.models.deepmt_dr` – the hierarchy and its staged training (:class:`DeepMTDR`)
* :mod:`~deepmt.models.baselines` – bicubic, SRCNN, EDSR, single-task nets, two-stage, Foo et al. MT
* :mod:`~deepmt.models.base` – the interface of every trainable method: :class:`Method`, :class:`MethodOutput`
* :mod:`~deepmt.models.methods` – the registry: :func:`build_method`, :data:`METHODS`
* :mod:`~deepmt.models.cost` – parameter / FLOP table
"""

from deepmt.models.grading import GradingNet
from deepmt.models.isr import ISRNet
from deepmt.models.methods import METHODS, Method, MethodOutput, build_method
from deepmt.models.segmentation import LesionUNet
from deepmt.models.visualization import VisualizationMap

__all__ = ["ISRNet", "LesionUNet", "GradingNet", "VisualizationMap", "Method", "MethodOutput", "METHODS", "build_method"]
