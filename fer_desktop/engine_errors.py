"""The error both engines raise when what was asked for is not there, apart from the classifiers
so that ``classifier`` (which chooses the engine) and ``torch_classifier`` need not import each other."""


class EngineUnavailableError(ValueError):
    """The engine or device asked for is not installed or not there; the message says what to do."""
