"""placeholder"""


def register(app) -> None:
    return None
