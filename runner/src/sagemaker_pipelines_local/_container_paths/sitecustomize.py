"""The container's ``/opt/ml`` for a local step: its own folder, without root or Docker.

The runner puts this folder first on a step's PYTHONPATH and names the step's folder in
``SAGEMAKER_PIPELINES_LOCAL_OPT_ML``; Python imports this module at start-up, and from then on
``open``, the ``os`` file functions and everything built on them (``pathlib``, ``glob``,
``shutil``, pandas, joblib, numpy) see ``/opt/ml/...`` as that folder. Two steps running at
once each have their own. Paths handed to other programs (a subprocess, a C library that
opens files itself) are not mapped.

A warm pool's server (``_warm_pool_server.py``) starts with the variable set and empty: the
functions are wrapped before any library is imported, and map nothing until each forked
step calls :func:`set_root` with its own folder.
"""

import builtins
import functools
import io
import os

_CONTAINER = "/opt/ml"
_root = ""
_root_b = b""


def set_root(root):
    """Map ``/opt/ml`` to ``root`` from now on ("" maps nothing)."""
    global _root, _root_b
    _root, _root_b = root, os.fsencode(root)


def _install():
    def mapped(path):
        root = _root
        if not root:
            return path
        if isinstance(path, (str, bytes)):
            text = path
        elif hasattr(path, "__fspath__"):
            text = os.fspath(path)
        else:
            return path  # a file descriptor, None, ...
        if isinstance(text, bytes):
            if text == b"/opt/ml" or text.startswith(b"/opt/ml/"):
                return _root_b + text[len(_CONTAINER) :]
            return path
        if text == _CONTAINER or text.startswith(_CONTAINER + "/"):
            return root + text[len(_CONTAINER) :]
        return path

    def first(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if args:
                args = (mapped(args[0]), *args[1:])
            for key in ("path", "file"):
                if key in kwargs:
                    kwargs[key] = mapped(kwargs[key])
            return fn(*args, **kwargs)

        return wrapper

    def both(fn):
        @functools.wraps(fn)
        def wrapper(src, dst, *args, **kwargs):
            return fn(mapped(src), mapped(dst), *args, **kwargs)

        return wrapper

    builtins.open = io.open = first(builtins.open)
    capability_sets = [
        getattr(os, name)
        for name in ("supports_fd", "supports_dir_fd", "supports_follow_symlinks")
        if hasattr(os, name)
    ]
    single = (
        "access", "chdir", "chmod", "listdir", "lstat", "mkdir", "open", "readlink",
        "remove", "rmdir", "scandir", "stat", "statvfs", "truncate", "unlink", "utime",
    )  # fmt: skip
    for name, wrap in [(n, first) for n in single] + [
        (n, both) for n in ("link", "rename", "replace", "symlink")
    ]:
        original = getattr(os, name, None)
        if original is None:
            continue
        wrapper = wrap(original)
        setattr(os, name, wrapper)
        for capabilities in capability_sets:
            if original in capabilities:
                capabilities.add(wrapper)


if "SAGEMAKER_PIPELINES_LOCAL_OPT_ML" in os.environ:
    set_root(os.environ["SAGEMAKER_PIPELINES_LOCAL_OPT_ML"])
    _install()
