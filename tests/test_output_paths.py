"""Output files never destroy what they point at (neurocompile.atomic's rule, issue 26): a symlink is written
through and stays a link, a character device or FIFO is written in place and stays what it is, a directory / socket
/ missing folder / folder under a file / two outputs naming one file are refused with exit 2 before any work, and
plots are one atomic group. Devices are PRIVATE nodes made in tmp_path (never the real /dev/null); FIFOs are only
written with a reader thread attached, under a timeout."""
import json
import os
import socket
import stat
import threading
import time

import numpy as np
import pytest

from neurocompile import cli
from neurocompile.cli import options as cli_options
from neurocompile.analysis import report
from neurocompile.atomic import OutputPathError, output_target, write_atomic
from tests.test_cli_robustness import main, one_paragraph

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "examples", "digits_cqrelu.onnx")  # absolute: some tests chdir




@pytest.fixture
def data(tmp_path):
    """Four digits and their labels: evaluate with --steps 4 takes about a second."""
    x = np.load(os.path.join(ROOT, "examples/digits_test.npy"))[:4]
    y = np.load(os.path.join(ROOT, "examples/digits_test_labels.npy"))[:4]
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return str(tmp_path / "x.npy"), str(tmp_path / "y.npy")


@pytest.fixture
def node(tmp_path):
    """A private character device with /dev/null's numbers: the suite runs as root (CI too), where mknod works; a
    failure here fails the test rather than skipping what it proves."""
    path = tmp_path / "null"
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    return path


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if the evaluation or a conversion starts: refusals must come first."""
    import neurocompile.analysis.evaluate

    def boom(*_, **__):
        raise AssertionError("the work ran before the output paths were checked")

    monkeypatch.setattr(neurocompile.analysis.evaluate, "evaluate", boom)
    monkeypatch.setattr(cli_options, "_load", boom)


def test_symlink_stays_a_link_and_its_target_gets_the_content(tmp_path, capsys, data):
    x, y = data
    (tmp_path / "real.json").write_text("old")
    os.symlink("real.json", tmp_path / "link.json")  # relative, as ln -s makes it
    os.symlink("new.json", tmp_path / "dangling.json")  # its target does not exist yet: created
    rc, out, err = main(capsys, "evaluate", MODEL, "--input", x, "--labels", y, "--steps", 4,
                        "--json", tmp_path / "link.json", "--report", tmp_path / "dangling.json", "--quiet")
    assert rc == 0, err
    assert os.path.islink(tmp_path / "link.json") and os.readlink(tmp_path / "link.json") == "real.json"
    assert json.loads((tmp_path / "real.json").read_text())["summary"]["samples"] == 4
    assert os.path.islink(tmp_path / "dangling.json") and (tmp_path / "new.json").read_text().startswith("<!DOCTYPE")
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".neurocompile-")]  # no temp file left


def test_symlink_in_the_library_and_a_dangling_link_without_folder(tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    os.symlink(d / "t.bin", tmp_path / "l.bin")
    write_atomic({str(tmp_path / "l.bin"): lambda f: f.write(b"abc")})
    assert os.path.islink(tmp_path / "l.bin") and (d / "t.bin").read_bytes() == b"abc"
    os.symlink(tmp_path / "nowhere" / "t.json", tmp_path / "lost.json")
    with pytest.raises(OutputPathError, match="nowhere' does not exist"):
        write_atomic({str(tmp_path / "lost.json"): lambda f: f.write(b"{}")})
    rc, out, err = main(capsys, MODEL, "--json", tmp_path / "lost.json", "--quiet")
    assert rc == 2 and "--json" in one_paragraph(err) and "nowhere' does not exist" in err and out == ""
    os.symlink("loop.json", tmp_path / "loop.json")
    rc, out, err = main(capsys, MODEL, "--json", tmp_path / "loop.json", "--quiet")
    assert rc == 2 and "symbolic links" in one_paragraph(err)


def test_a_char_device_stays_a_device(tmp_path, capsys, data, node):
    x, y = data
    rc, out, err = main(capsys, "evaluate", MODEL, "--input", x, "--steps", 4, "--json", node,
                        "--report", node, "--quiet")  # two outputs may share a device: written one after the other
    assert rc == 0, err
    assert stat.S_ISCHR(os.stat(node).st_mode) and os.stat(node).st_rdev == os.makedev(1, 3)
    assert f"wrote {node}" in out
    assert sorted(os.listdir(tmp_path)) == ["null", "x.npy", "y.npy"]  # no temp file beside it
    write_atomic({str(node): lambda f: f.write(b"x"), str(tmp_path / "f.txt"): lambda f: f.write(b"y")})
    assert stat.S_ISCHR(os.stat(node).st_mode) and (tmp_path / "f.txt").read_bytes() == b"y"
    link = tmp_path / "to-null"
    os.symlink(node, link)  # through a symlink too (/dev/stdout -> /proc/self/fd/1 -> a terminal)
    assert output_target(str(link)).direct and output_target(str(link)).real == str(node)
    write_atomic({str(link): lambda f: f.write(b"x")})
    assert os.path.islink(link) and stat.S_ISCHR(os.stat(node).st_mode)


def test_a_fifo_is_written_in_place(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []

    def reader():
        with open(fifo, "rb") as f:
            got.append(f.read())

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    write_atomic({str(fifo): lambda f: f.write(b'{"a": 1}')})  # open() waits for the reader, which is there
    t.join(timeout=10)
    assert not t.is_alive() and got == [b'{"a": 1}']
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_an_open_file_through_proc_is_written_in_place(tmp_path):
    """/dev/stdout > out.txt is /proc/self/fd/1 -> out.txt: written in place, not replaced (the shell's file)."""
    f = open(tmp_path / "out.txt", "wb")
    try:
        ino = os.fstat(f.fileno()).st_ino
        path = f"/proc/self/fd/{f.fileno()}"
        assert output_target(path).direct
        write_atomic({path: lambda fh: fh.write(b"data")})
        assert os.stat(tmp_path / "out.txt").st_ino == ino and (tmp_path / "out.txt").read_bytes() == b"data"
    finally:
        f.close()


def test_directory_socket_and_special_paths_are_refused_before_work(tmp_path, capsys, no_work):
    (tmp_path / "adir").mkdir()
    os.symlink("adir", tmp_path / "dirlink")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    try:
        cases = [(["--json", tmp_path / "adir"], "is a directory"),
                 (["--json", tmp_path / "dirlink"], "is a directory"),
                 (["--json", tmp_path / "sock"], "is a socket"),
                 (["--json", str(tmp_path / "new") + "/"], "names a folder"),
                 (["--json", tmp_path / "x.npy" / "r.json"], "is a file, not a directory")]
        (tmp_path / "x.npy").write_bytes(b"")
        for args, expect in cases:
            rc, out, err = main(capsys, MODEL, *args, "--quiet")
            assert rc == 2 and expect in one_paragraph(err) and out == "", (args, err)
            rc, out, err = main(capsys, "evaluate", MODEL, "--input", "x.npy", *args, "--quiet")
            assert rc == 2 and expect in one_paragraph(err), (args, err)
    finally:
        sock.close()
    assert sorted(os.listdir(tmp_path)) == ["adir", "dirlink", "sock", "x.npy"]


def test_two_outputs_naming_one_file_are_refused(tmp_path, capsys, monkeypatch, no_work):
    monkeypatch.chdir(tmp_path)
    os.symlink("same.json", tmp_path / "link.json")
    os.symlink("ir.npz", tmp_path / "npz.json")
    ev = ["evaluate", MODEL, "--input", "x.npy", "--quiet"]
    cases = [(ev + ["--report", "same.json", "--json", "same.json"], "--report and --json would both write"),
             (ev + ["--report", "./same.json", "--json", "same.json"], "--report and --json would both write"),
             (ev + ["--report", "link.json", "--json", tmp_path / "same.json"], "would both write"),
             ([MODEL, "--save-ir", "ir.json", "--json", "npz.json", "--quiet"],
              "--save-ir and --json would both write"),
             ([MODEL, "--save-ir", "ir.json", "--json", "./ir.json", "--quiet"], "would both write")]
    for args, expect in cases:
        rc, out, err = main(capsys, *args)
        assert rc == 2 and expect in one_paragraph(err) and out == "", (args, err)
    assert sorted(os.listdir(tmp_path)) == ["link.json", "npz.json"]
    with pytest.raises(OutputPathError, match="same file"):
        write_atomic({"same.json": lambda f: f.write(b"1"), "link.json": lambda f: f.write(b"2")})
    assert sorted(os.listdir(tmp_path)) == ["link.json", "npz.json"]


def test_plot_folder_under_a_file_or_in_proc_is_refused_before_work(tmp_path, capsys, no_work):
    (tmp_path / "somefile").write_text("x")
    cases = [(tmp_path / "somefile" / "plots", "is a file, not a directory"),
             (tmp_path / "somefile", "is a file")]
    if os.path.isdir("/proc"):
        cases.append(("/proc/plots", "cannot write in directory '/proc'"))
    for plot, expect in cases:
        t0 = time.perf_counter()
        rc, out, err = main(capsys, "evaluate", MODEL, "--input", "x.npy", "--plot", plot, "--quiet")
        assert rc == 2 and "--plot" in one_paragraph(err) and expect in err and out == "", (plot, err)
        assert time.perf_counter() - t0 < 5
    assert sorted(os.listdir(tmp_path)) == ["somefile"]


def test_plot_name_collisions_are_refused_before_work(tmp_path, capsys, no_work):
    plots = tmp_path / "plots"
    ev = ["evaluate", MODEL, "--input", "x.npy", "--plot", plots, "--quiet"]
    plots.mkdir()
    rc, out, err = main(capsys, *ev, "--json", tmp_path / "plots" / "accuracy.png")
    assert rc == 2 and "--plot and --json would both write" in one_paragraph(err)
    rc, out, err = main(capsys, *ev, "--report", plots / "spike_rates.png")
    assert rc == 2 and "--plot and --report would both write" in one_paragraph(err)
    os.symlink("spike_rates.png", plots / "accuracy.png")  # two plots map to one file
    rc, out, err = main(capsys, *ev)
    assert rc == 2 and "--plot and --plot would both write" in one_paragraph(err)
    os.unlink(plots / "accuracy.png")
    (plots / "layer_errors.png").mkdir()  # a plot's name taken by a folder
    rc, out, err = main(capsys, *ev)
    assert rc == 2 and "is a directory" in one_paragraph(err)
    assert os.listdir(plots) == ["layer_errors.png"]


def _fake_figures(monkeypatch):
    monkeypatch.setattr(report, "figures", lambda ev: {name: f"png {name}".encode() for name in report.PLOTS})


def test_plots_are_one_atomic_group(tmp_path, monkeypatch):
    _fake_figures(monkeypatch)
    real_replace = os.replace
    calls = []

    def second_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2 and str(dst).endswith(".png"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", second_fails)
    out = tmp_path / "new" / "plots"
    with pytest.raises(OSError, match="No space"):
        report.write_plots(None, str(out))
    assert os.listdir(tmp_path) == []  # no first PNG, no temp file, not even the folders made for them
    # over existing plots: the first one, already replaced, is put back
    out.mkdir(parents=True)
    for name in report.PLOTS:
        (out / f"{name}.png").write_bytes(b"old")
    calls.clear()
    with pytest.raises(OSError, match="No space"):
        report.write_plots(None, str(out))
    assert sorted(os.listdir(out)) == sorted(f"{n}.png" for n in report.PLOTS)
    assert all((out / f"{n}.png").read_bytes() == b"old" for n in report.PLOTS)
    monkeypatch.setattr(os, "replace", real_replace)
    assert report.write_plots(None, str(out)) == [str(out / f"{n}.png") for n in report.PLOTS]
    assert (out / "accuracy.png").read_bytes() == b"png accuracy" and len(os.listdir(out)) == 3


def test_a_failed_second_plot_write_leaves_no_first_png(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "figures", lambda ev: {"accuracy": b"png", "layer_errors": object()})  # not bytes
    with pytest.raises(TypeError):
        report.write_plots(None, str(tmp_path / "plots"))
    assert os.listdir(tmp_path) == []
    (tmp_path / "somefile").write_text("x")
    with pytest.raises(OutputPathError, match="is a file"):  # the library refuses before drawing, too
        report.write_plots(None, str(tmp_path / "somefile" / "plots"))


def test_loihi2_outputs_are_checked_together(tmp_path, capsys, monkeypatch):
    from neurocompile import api

    def boom(*_, **__):
        raise AssertionError("deployed before the output paths were checked")

    monkeypatch.setattr(api, "deploy_loihi2", boom)
    out = tmp_path / "out"
    out.mkdir()
    rc, _, err = main(capsys, MODEL, "--target", "loihi2", "--artifacts", out, "--json", out / "digits_cqrelu.h5")
    assert rc == 2 and "--artifacts and --json would both write" in one_paragraph(err)
    (tmp_path / "f").write_text("x")
    rc, _, err = main(capsys, MODEL, "--target", "loihi2", "--artifacts", tmp_path / "f" / "out")
    assert rc == 2 and "--artifacts" in one_paragraph(err) and "is a file, not a directory" in err
    assert os.listdir(out) == []
