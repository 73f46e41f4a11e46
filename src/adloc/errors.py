"""Exception types. Every message names the offending file or config key and says how to fix it."""


class AdlocError(Exception):
    """Base class for errors that the workflow reports to the user as one clear line."""


class ConfigError(AdlocError, ValueError):
    """A config key is unknown, has the wrong type, or an unsupported value."""


class DatasetError(AdlocError, ValueError):
    """The dataset folder, an image or a mask is missing, unreadable or inconsistent."""


class ModelError(AdlocError, ValueError):
    """A model file is missing, corrupt, or was made with an incompatible config."""


class WeightsError(AdlocError, FileNotFoundError):
    """Pretrained weights were requested but cannot be found offline."""


class CalibrationError(AdlocError, ValueError):
    """A threshold cannot be calibrated (e.g. validation has no anomalies)."""


class WriteError(AdlocError):
    """An output cannot be written: the disk is full, or its folder is read-only or not ours."""
