"""The local spawner of the embedded hub: processes on this machine, with the profile picker."""

from __future__ import annotations

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import default


class LocalProfileSpawner(SimpleLocalProcessSpawner):
    """``SimpleLocalProcessSpawner`` whose form offers the catalog's profiles (for development).

    Every server runs as the hub's own Unix user, with its home under ``home_dir_template``:
    there is no isolation between users, so use it on one machine, for development and tests.
    The chosen profile reaches the server (and its kernels) as ``AICLOUD_PROFILE`` and
    ``AICLOUD_ACCELERATOR[_COUNT]``; it does not reserve devices on this machine.
    """

    @default("options_from_form")
    def _simple_form(self):
        return self._profile_from_form

    @staticmethod
    def _profile_from_form(form_data: dict[str, list[str]]) -> dict[str, str]:
        """``{"profile": slug}`` from the form's select (one value per field)."""
        return {key: values[0] for key, values in form_data.items() if values}
