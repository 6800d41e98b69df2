"""aicloud: a notebook-centric AI platform on JupyterHub."""

from aicloud._version import __version__


def _jupyter_server_extension_points():
    """The server extension: the job service in its standalone home."""
    from aicloud.app import AICloudApp

    return [{"module": "aicloud", "app": AICloudApp}]


def load_ipython_extension(ipython):
    """``%load_ext aicloud``: the ``%aicloud`` magics (see :mod:`aicloud.magics`)."""
    from aicloud.magics import load_ipython_extension as load

    load(ipython)


def launch(fn, *args, **options):
    """Run ``fn(*args)`` on N workers; rank 0's result (see :mod:`aicloud.magics.function`)."""
    from aicloud.magics.function import launch as run

    return run(fn, *args, **options)


async def launch_async(fn, *args, **options):
    """:func:`launch`, awaited (``result = await aicloud.launch_async(fn, nproc=2)``): the
    kernel stays free while it waits, so the job monitor's Cancel button works."""
    from aicloud.magics.awaiting import in_thread
    from aicloud.magics.function import launch as run

    return await in_thread(lambda: run(fn, *args, **options))


__all__ = ["__version__", "launch", "launch_async", "load_ipython_extension"]
