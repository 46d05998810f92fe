"""The warm pool of one image's Python: started by :mod:`.warmpool`, run by that Python.

It imports the image's libraries once (pandas, scikit-learn, SciPy, boto3: what costs a step
seconds before its first line of work), then waits on a Unix socket in a folder only its
user can open. For each step the runner sends the command, the step's environment, its
working folder and the two log files (as file descriptors); this process forks, and the
child becomes the step's process:

- a session and process group of its own (the runner's watchdog and stop signal reach it by
  its pid), the signal handlers a new interpreter has, no file descriptor of the server's;
- exactly the step's environment (``os.environ`` cleared, then set), the step's folder as
  working directory, ``sys.argv`` and ``sys.path[0]`` as ``python script.py`` sets them, and
  the container's ``/opt/ml`` mapped to the step's folder (``sitecustomize``);
- it waits for the runner's go (sent once the runner knows its pid), then runs the script as
  ``__main__``; its exit code, a traceback and exit 1 for an uncaught exception, and death
  by a signal are what a new process would give.

The server sends the child's pid and, when it ends, its exit code on the same connection;
if the runner's end of the connection closes first (the runner died), the child's group is
killed. With no step running and no request for ``keep_alive`` seconds, the server removes
its socket and exits: a local counterpart of SageMaker's warm pools. This file runs under
the image's Python (3.8 and later): the standard library only, no runner import.
"""

import array
import contextlib
import gc
import importlib
import importlib.machinery
import json
import os
import select
import signal
import socket
import struct
import sys
import time
import traceback
import types

# The step's log files (stdout, stderr) travel with the request.
_FDS = 2
_MAX_REQUEST = 4 * 1024 * 1024


def _exit_code(status):
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return 1


def _send(conn, message):
    try:
        conn.sendall((json.dumps(message) + "\n").encode())
        return True
    except OSError:
        return False


def _same_user(conn):
    """Linux: the peer's uid (SO_PEERCRED); elsewhere the folder's permissions decide."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return True
    creds = conn.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid()


def _read_request(conn):
    """(request, fds): a 4-byte length, the JSON request, the fds on its first segment."""
    conn.settimeout(10)
    fds = array.array("i")
    data, ancdata, _flags, _addr = conn.recvmsg(65536, socket.CMSG_SPACE(_FDS * fds.itemsize))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    if len(data) < 4:
        raise ValueError("short request")
    size = struct.unpack("!I", data[:4])[0]
    if size > _MAX_REQUEST:
        raise ValueError("request too large")
    body = data[4:]
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ValueError("truncated request")
        body += chunk
    conn.settimeout(None)
    return json.loads(body.decode()), list(fds)


def _print_exception(exc, script):
    """The traceback ``python script.py`` prints: from the script's first frame on."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != script:
        tb = tb.tb_next
    if tb is not None:
        exc.__traceback__ = tb  # what the hook prints (3.11 and later read it from there)
    try:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    except Exception:
        traceback.print_exception(type(exc), exc, tb)


def _run_script(argv):
    """Run ``argv[0]`` as ``__main__``; return the exit code a new interpreter would give."""
    script = argv[0]
    code = 0
    try:
        with open(script, "rb") as fh:
            source = fh.read()
        main = types.ModuleType("__main__")
        main.__file__ = script
        main.__builtins__ = __builtins__
        main.__cached__ = None
        main.__loader__ = importlib.machinery.SourceFileLoader("__main__", script)
        sys.modules["__main__"] = main
        # What `python script.py` does with the script: the step's own code, as __main__.
        exec(compile(source, script, "exec", dont_inherit=True), main.__dict__)  # noqa: S102
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            with contextlib.suppress(Exception):
                print(exc.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt as exc:
        _print_exception(exc, script)
        _finish()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)  # as a new interpreter dies of Ctrl-C
        code = 130
    except BaseException as exc:
        _print_exception(exc, script)
        code = 1
    return code & 0xFF


def _finish():
    """What interpreter shutdown does before exit: threads joined, atexit, streams flushed."""
    import atexit
    import threading

    with contextlib.suppress(Exception):
        threading._shutdown()  # type: ignore[attr-defined]
    with contextlib.suppress(Exception):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _child(request, fds, go_fd, ready_fd):
    """In the forked child: become the step's process, wait for the go, run, exit."""
    try:
        os.setsid()
        os.write(ready_fd, b"r")  # the group exists before the runner learns the pid
        os.close(ready_fd)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.set_wakeup_fd(-1)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        # Nothing of the server's stays open (its socket, the log fds, other steps' pipes).
        os.closerange(3, go_fd)
        os.closerange(go_fd + 1, os.sysconf("SC_OPEN_MAX"))
        if os.read(go_fd, 1) != b"g":
            os._exit(1)  # the runner is gone before the step started
        os.close(go_fd)

        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        import tempfile

        tempfile.tempdir = None
        argv = list(request["argv"])
        sys.argv = argv
        sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
        root = os.environ.get("SAGEMAKER_PIPELINES_LOCAL_OPT_ML")
        mapping = sys.modules.get("sitecustomize")
        if root and mapping is not None and hasattr(mapping, "set_root"):
            mapping.set_root(root)
        numpy = sys.modules.get("numpy")
        if numpy is not None:  # a new process seeds NumPy's global generator afresh
            numpy.random.seed()
    except BaseException:
        try:
            traceback.print_exc()
        finally:
            os._exit(1)
    code = _run_script(argv)
    _finish()
    os._exit(code)


class _Step:
    def __init__(self, conn, go_fd):
        self.conn = conn
        self.go_fd = go_fd


def serve(sock_path, lock_path, keep_alive, preload):
    import fcntl

    lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # a server of this key is already alive (or starting)

    for name in preload:
        # Not in this image, or broken: the steps that need it import it themselves.
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    gc.collect()
    if hasattr(gc, "freeze"):
        gc.freeze()  # the children's copy-on-write memory stays shared

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = f"{sock_path}.{os.getpid()}.tmp"
    try:
        os.unlink(tmp)
    except OSError:
        pass
    listener.bind(tmp)
    os.chmod(tmp, 0o600)
    listener.listen(16)
    os.replace(tmp, sock_path)
    identity = os.stat(sock_path).st_ino

    steps = {}
    last_activity = time.monotonic()
    while True:
        if not steps and (stopping or time.monotonic() - last_activity > keep_alive):
            break
        watched = [wake_r] + [s.conn for s in steps.values() if s.conn is not None]
        if not stopping:
            watched.append(listener)
        try:
            ready, _, _ = select.select(watched, [], [], 1.0)
        except InterruptedError:
            ready = []
        if wake_r in ready:
            try:
                os.read(wake_r, 4096)
            except OSError:
                pass
        while steps:  # reap every child that ended
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            step = steps.pop(pid, None)
            if step is None:
                continue
            last_activity = time.monotonic()
            if step.go_fd is not None:
                os.close(step.go_fd)
            if step.conn is not None:
                _send(step.conn, {"exit": _exit_code(status)})
                step.conn.close()
        for pid, step in list(steps.items()):
            if step.conn is None or step.conn not in ready:
                continue
            try:
                data = step.conn.recv(16)
            except OSError:
                data = b""
            if data.startswith(b"g") and step.go_fd is not None:
                os.write(step.go_fd, b"g")
                os.close(step.go_fd)
                step.go_fd = None
            elif not data:  # the runner is gone: so is its step
                _kill(pid)
                step.conn.close()
                step.conn = None
                if step.go_fd is not None:
                    os.close(step.go_fd)
                    step.go_fd = None
        if listener in ready:
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            last_activity = time.monotonic()
            keep_alive = _handle(conn, steps, stopping, keep_alive)

    try:
        if os.stat(sock_path).st_ino == identity:
            os.unlink(sock_path)
    except OSError:
        pass
    return 0


def _handle(conn, steps, stopping, keep_alive):
    """Answer one connection; return the keep-alive from then on."""
    try:
        if not _same_user(conn):
            conn.close()
            return keep_alive
        request, fds = _read_request(conn)
    except (OSError, ValueError):
        conn.close()
        return keep_alive
    op = request.get("op")
    if isinstance(request.get("keep_alive"), (int, float)):
        keep_alive = float(request["keep_alive"])
    if op == "stop":
        stopping.append(True)
        _send(conn, {"stopping": os.getpid(), "running": len(steps)})
        conn.close()
    elif op == "ping":
        _send(conn, {"pid": os.getpid(), "python": sys.executable})
        conn.close()
    elif op == "run" and len(fds) == _FDS:
        go_r, go_w = os.pipe()
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(go_w)
            os.close(ready_r)
            _child(request, fds, go_r, ready_w)  # does not return
        os.close(go_r)
        os.close(ready_w)
        for fd in fds:
            os.close(fd)
        try:
            os.read(ready_r, 1)  # b"" if the child died first: the runner learns its exit
        finally:
            os.close(ready_r)
        steps[pid] = _Step(conn, go_w)
        if not _send(conn, {"pid": pid}):
            _kill(pid)
    else:
        for fd in fds:
            os.close(fd)
        _send(conn, {"error": "unknown request"})
        conn.close()
    if stopping:
        return 0.0
    return keep_alive


def _kill(pid):
    """SIGKILL to the step's process group (and to the child, were it not yet its leader)."""
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except OSError:
            pass


if __name__ == "__main__":
    # sys.path[0] is the runner's package folder: no step may import from it.
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        sys.path.pop(0)
    sys.exit(serve(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4].split(",")))
