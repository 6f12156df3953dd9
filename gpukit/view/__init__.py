"""A browser viewer of one volume: ``gpukit view PATH`` or ``gpukit.view(volume_or_path)``.

Three linked orthogonal views and an oblique one, rendered on the server from one resident volume
(:class:`~gpukit.Reslicer`) and sent as frames over a WebSocket; see :mod:`gpukit.view.server` for the
protocol and security, :mod:`gpukit.view.scene` for what each view shows. Needs ``aiohttp``.
"""

from __future__ import annotations

from .server import ProtocolError, ViewServer, view

__all__ = ["view", "ViewServer", "ProtocolError"]


class _CallableModule(__import__("types").ModuleType):
    """``gpukit.view`` is this package and also the function :func:`view`: ``gpukit.view(path)`` works
    whether or not ``gpukit.view`` was imported as a module first."""

    def __call__(self, *args, **kwargs):
        return view(*args, **kwargs)


__import__("sys").modules[__name__].__class__ = _CallableModule
