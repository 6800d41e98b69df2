"""aicloud: a notebook-centric AI platform on JupyterHub."""

from aicloud._version import __version__


def _jupyter_server_extension_points():
    """The server extension: the job service in its standalone home."""
    from aicloud.app import AICloudApp

    return [{"module": "aicloud", "app": AICloudApp}]


__all__ = ["__version__"]
