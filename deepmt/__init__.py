"""deepmt: a runnable replication of DeepMT-DR (Wang et al., AAAI 2021).

Low-resolution fundus photo -> super-resolution (ISR) -> lesion segmentation (MA, HE, EX, SE)
-> DR grade 0-4, one hierarchical network trained jointly with the paper's task-aware loss.
"""

from deepmt.config import Config, get_config

__version__ = "0.1.0"

#: Lesion channels, in the order used by every mask tensor and segmentation output.
LESIONS = ("MA", "HE", "EX", "SE")
#: The 5-level international DR scale.
GRADES = ("No DR", "Mild NPDR", "Moderate NPDR", "Severe NPDR", "PDR")

__all__ = ["Config", "get_config", "LESIONS", "GRADES", "__version__"]
