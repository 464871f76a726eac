"""The suite's zygote (tests/zygote.py): the package's command lines forked from a process that has imported
TensorFlow behave as fresh processes (exit status, streams, environment, signals), and everything the zygote
cannot honour starts a fresh interpreter."""

import os
import signal
import subprocess
import sys

import pytest

import keras_resnet  # noqa: F401  the worker's own imports put variables in env() (TF2_BEHAVIOR, ...), as in the suite
import zygote
from conftest import QUIET_ENV, REPO, env, make_image_folder, run_cli

pytestmark = pytest.mark.skipif(zygote.ZYGOTE.failed, reason="the zygote is off here (KERAS_RESNET_TESTS_ZYGOTE=0)")

MISTAKE = ["--model=resnet7", "--model_dir=unused"]
SAYS = "error: --model: `name` 'resnet7' has no valid depth"


def test_a_command_line_is_forked_with_its_streams_exit_status_and_directory(tmp_path):
    before = zygote.ZYGOTE.forked
    out = run_cli(MISTAKE)
    assert zygote.ZYGOTE.forked == before + 1, zygote.ZYGOTE.refused
    assert (out.returncode, out.stdout) == (2, "") and out.stderr.startswith(SAYS) and out.stderr.count("\n") == 1
    assert not (tmp_path / "unused").exists() and not os.path.exists(os.path.join(REPO, "unused"))


def test_a_forked_process_reads_the_tests_runtime_variables_and_is_signalled_as_any_child(tmp_path):
    """`KERAS_RESNET_FAULT` (read after start-up) reaches the forked trainer, which kills itself at the site; a
    second trainer is killed by the test at once: both end with -9, reaped by the test's own `Popen`."""
    data = make_image_folder(tmp_path / "data", train=8, test=4)
    log = tmp_path / "faults.log"
    args = [sys.executable, "-m", "trainers.cifar", "--model=resnet8", f"--data={data}", "--batch_size=4",
            "--train_steps=2"]
    before = zygote.ZYGOTE.forked
    killed_itself = subprocess.run([*args, f"--model_dir={tmp_path / 'a'}"], cwd=REPO, capture_output=True, text=True,
                                   env=env(KERAS_RESNET_FAULT="train.start:kill", KERAS_RESNET_FAULT_LOG=str(log)))
    assert killed_itself.returncode == -signal.SIGKILL, killed_itself.stderr[-3000:]
    assert "train.start" in log.read_text()
    process = subprocess.Popen([*args, f"--model_dir={tmp_path / 'b'}"], cwd=REPO, env=env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    process.kill()
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL
    assert zygote.ZYGOTE.forked == before + 2, zygote.ZYGOTE.refused


def test_other_variables_options_and_programs_start_a_fresh_interpreter(tmp_path):
    before = zygote.ZYGOTE.forked
    out = run_cli(MISTAKE, KERAS_HOME=str(tmp_path))  # read when Keras is imported
    assert out.returncode == 2 and out.stderr.startswith(SAYS)
    assert zygote.ZYGOTE.refused == "the environment differs before start-up in ['KERAS_HOME']"
    out = subprocess.run([sys.executable, "-m", "trainers.cifar", *MISTAKE], cwd=REPO, env=env(),
                         capture_output=True, text=True, preexec_fn=os.getpid)
    assert out.returncode == 2 and out.stderr.startswith(SAYS)
    out = subprocess.run([sys.executable, "-c", "print('fresh')"], env=env(), capture_output=True, text=True)
    assert out.stdout == "fresh\n"
    assert zygote.ZYGOTE.forked == before


@pytest.mark.fresh_process
def test_a_test_marked_fresh_process_starts_a_fresh_interpreter():
    before = zygote.ZYGOTE.forked
    out = run_cli(MISTAKE)
    assert out.returncode == 2 and out.stderr.startswith(SAYS)
    assert zygote.ZYGOTE.forked == before


def test_a_python_c_program_of_the_package_is_forked_as_python_runs_it(tmp_path):
    """`python -c CODE ARGS` (or `python SCRIPT ARGS`) that imports the package: `sys.argv`, the path's first
    entry, `__main__`, the exit status and the streams are those of a fresh `python -c` (or script); a program
    that hides or checks modules, or reads the environment, starts fresh."""
    code = "import sys, keras_resnet\nprint(sys.argv, repr(sys.path[0]), __name__, 'zygote' in globals())\nsys.exit(3)"
    before = zygote.ZYGOTE.forked
    out = subprocess.run([sys.executable, "-c", code, "a", "b"], cwd=tmp_path, env=env(), capture_output=True,
                         text=True)
    assert zygote.ZYGOTE.forked == before + 1, zygote.ZYGOTE.refused
    assert (out.returncode, out.stdout, out.stderr) == (3, "['-c', 'a', 'b'] '' __main__ False\n", "")
    failing = subprocess.run([sys.executable, "-c", "import keras_resnet\nraise ValueError('bad')"], env=env(),
                             capture_output=True, text=True)
    assert failing.returncode == 1 and failing.stderr.strip().endswith("ValueError: bad")
    script = tmp_path / "tool" / "script.py"
    script.parent.mkdir()
    script.write_text("import sys, keras_tuner\nprint(sys.argv, sys.path[0], __name__, __file__)\n")
    out = subprocess.run([sys.executable, "tool/script.py", "c"], cwd=tmp_path, env=env(), capture_output=True,
                         text=True)
    assert out.stdout == f"['tool/script.py', 'c'] {script.parent} __main__ tool/script.py\n", out.stderr[-2000:]
    assert zygote.ZYGOTE.forked == before + 3, zygote.ZYGOTE.refused
    # (Programs that name the package without importing it: a fresh interpreter that skips TensorFlow's import.)
    for fresh in ("import sys  # keras_resnet\nprint('keras_resnet' not in sys.modules and 'fresh')",
                  "import os  # keras_resnet\nos.environ['TF_ENABLE_ONEDNN_OPTS'] = '0'\nprint('fresh')"):
        out = subprocess.run([sys.executable, "-c", fresh], env=env(), capture_output=True, text=True)
        assert out.stdout == "fresh\n", out.stderr[-2000:]
    assert zygote.ZYGOTE.forked == before + 3


def test_a_serving_script_is_forked_from_a_zygote_without_keras_or_the_package(tmp_path):
    """A script that starts with `zygote.SERVING_HEAD` (TensorFlow, Keras and the package blocked: a serving
    process) is forked from the serving zygote: neither module is imported, its path, arguments, exit status and
    output are a fresh script's (TensorFlow's start-up lines excepted: the zygote printed none); a later
    `import keras` fails there as in a fresh one."""
    script = tmp_path / "serve.py"
    script.write_text(zygote.SERVING_HEAD + "\nimport tensorflow as tf\n"
                      "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'keras_resnet') "
                      "and sys.modules[m])\n"
                      "print(sys.argv, sys.path[0], loaded, tf.constant(2).numpy())\n"
                      "try:\n    import keras\nexcept ImportError:\n    sys.exit(4)\n")
    before, package = zygote.SERVING.forked, zygote.ZYGOTE.forked
    serving_env = dict(os.environ, **QUIET_ENV)  # as the suite's serving scripts run
    out = subprocess.run([sys.executable, str(script), "x"], cwd=tmp_path, env=serving_env, capture_output=True,
                         text=True)
    assert zygote.SERVING.forked == before + 1, zygote.SERVING.refused
    assert zygote.ZYGOTE.forked == package
    assert (out.returncode, out.stdout) == (4, f"[{str(script)!r}, 'x'] {tmp_path} [] 2\n"), out.stderr[-2000:]
    out = subprocess.run([sys.executable, str(script), "y"], cwd=tmp_path, env=dict(serving_env, KERAS_HOME="k"),
                         capture_output=True, text=True)  # read by Keras alone, which is blocked here
    assert zygote.SERVING.forked == before + 2, zygote.SERVING.refused
    assert out.returncode == 4, out.stderr[-2000:]
