"""Choosing where training runs, from the strings a user writes: ``"cpu"``, ``"gpu"``,
``"cuda"``, ``"cuda:1"`` or ``"auto"``, and a number of devices for data-parallel
training.

JAX names its platforms ``cpu``, ``gpu`` and ``tpu``; ``"cuda"`` (PyTorch's word) and
``"gpu"`` both mean JAX's ``gpu`` platform.
"""

__all__ = ["jax_devices", "torch_device"]

from typing import Any

_JAX_PLATFORMS = {"cpu": "cpu", "gpu": "gpu", "cuda": "gpu", "tpu": "tpu"}
"""The platform words a device string may start with, and JAX's name of each."""


def _parse_jax(device: str) -> tuple[str, int | None]:
    """``(platform word, index or None)`` of a device string such as ``"cuda:1"``.

    :raises ValueError: if the string is not ``platform`` or ``platform:index``.
    """
    word, colon, index = str(device).strip().lower().partition(":")
    if word not in _JAX_PLATFORMS or (colon and not index.isdigit()):
        known = ", ".join(repr(w) for w in (*_JAX_PLATFORMS, "auto"))
        raise ValueError(f"unknown device {device!r}: use one of {known}, or e.g. 'cuda:1'")
    return word, int(index) if colon else None


def jax_devices(device: str | None = None, count: int | None = None) -> list[Any]:
    """The JAX devices to train on: the first ``count`` (``None``: one) of the platform
    that ``device`` names, in ``jax.devices(platform)``'s order; or the one device that an
    index names (``"cuda:1"``: the second GPU).

    :param device: ``None`` or ``"auto"``: JAX's default platform; ``"cpu"``; ``"gpu"`` or
        ``"cuda"``: the GPUs; ``"tpu"``; any of them with ``":index"``.
    :param count: how many devices, at least one.
    :raises ValueError: on an unknown device string, a platform this JAX does not have, an
        index or a count beyond the devices it has, or an index with a count above one.
    """
    import jax

    if count is not None and count < 1:
        raise ValueError(f"devices={count}: train on at least one device")
    word, index = ("auto", None) if device in (None, "auto") else _parse_jax(device)
    platform = None if word == "auto" else _JAX_PLATFORMS[word]
    try:
        available = jax.devices(platform)
    except RuntimeError:
        raise ValueError(
            f"device {device!r}: JAX has no {platform} platform here; jax.devices() offers "
            f"{jax.devices()}"
        ) from None
    if index is not None:
        if count not in (None, 1):
            raise ValueError(
                f"device {device!r} names one device but devices={count} asks for several: "
                f"name the platform ({word!r}) to train on several"
            )
        if index >= len(available):
            raise ValueError(
                f"device {device!r}: JAX has {len(available)} {platform} device(s): {available}"
            )
        return [available[index]]
    count = 1 if count is None else count
    if count > len(available):
        where = f"jax.devices({platform!r})" if platform else "jax.devices()"
        raise ValueError(
            f"devices={count} asks for more devices than JAX has: {where} offers "
            f"{len(available)}: {available}"
        )
    return list(available[:count])


def torch_device(device: Any = None) -> Any:
    """The PyTorch device to train on.

    :param device: ``None`` or ``"cpu"``: the CPU; ``"cuda"`` or ``"gpu"``: the current
        GPU; ``"cuda:1"``: the second one; ``"auto"``: a GPU if PyTorch sees one, else the
        CPU; or a ``torch.device``.
    :raises ValueError: on an unknown device string, or a GPU that PyTorch does not see
        (naming how many it sees).
    """
    import torch

    if isinstance(device, torch.device):
        word, index = device.type, device.index
    elif device is None:
        return torch.device("cpu")
    else:
        word, colon, text = str(device).strip().lower().partition(":")
        if word not in ("cpu", "cuda", "gpu", "auto") or (colon and not text.isdigit()):
            raise ValueError(
                f"unknown device {device!r}: use 'cpu', 'cuda', 'cuda:INDEX' or 'auto'"
            )
        index = int(text) if colon else None
    seen = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if word == "auto":
        word = "cuda" if seen else "cpu"
    if word == "cpu":
        return torch.device("cpu")
    if word not in ("cuda", "gpu"):
        raise ValueError(f"unsupported device type {word!r}: train on 'cpu' or 'cuda'")
    if (index or 0) >= seen:
        raise ValueError(
            f"device {device!r}: PyTorch sees {seen} GPU(s) here"
            + ("" if seen else " (no CUDA build or no GPU): train with device 'cpu'")
        )
    return torch.device("cuda", index if index is not None else torch.cuda.current_device())
