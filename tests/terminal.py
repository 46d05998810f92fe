"""A Copier questionnaire in a pseudo-terminal, answered key by key as a person does.

Shared by tests/test_questionnaire.py and the documentation's capture
(docs/_capture/capture_tutorial.py), so the session the docs show is the one the tests run.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pexpect
import pyte

ROWS, COLUMNS = 60, 200
ENTER, UP, CLEAR_LINE = "\r", "\x1b[A", "\x15"  # Ctrl-U empties a text prompt
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Each question's prompt shows its help: a fragment of it tells which question is asked.
PROMPTS = {
    "dataset_path": "Path to your CSV file",
    "target_column": "Column of the CSV that the model predicts",
    "problem_type": "classification predicts a label",
    "metric": "Metric that evaluate.py reports",
    "quality_gate": "Add a ConditionStep",
    "metric_threshold": "The gate's floor, compiled into the definition",
    "champion_margin": "Champion and challenger",
    "project_name": "Human-readable name",
    "project_slug": "Short name for folders",
    "package_name": "Python package of the project",
    "description": "One line that says what the model predicts",
    "processing_instance_type": "Instance type of the Preprocess",
    "training_instance_type": "Instance type of the training job",
    "transform_instance_type": "Instance type of the batch transform",
    "inference_instance_types": "Real-time inference instance types",
    "aws_region": "AWS region where the pipeline",
    "sagemaker_sdk": "SageMaker Python SDK generation",
    "framework_version": "SageMaker scikit-learn container",
    "python_version": "Python of the local environment",
    "model_package_group_name": "Model package group in the SageMaker Model Registry",
    "pipeline_name": "Name of the SageMaker Pipeline",
    "encrypt_and_isolate": "Encrypt with a KMS key of the project",
    "ci_provider": "How the project is built and released",
}
ORDER = list(PROMPTS)


class Questionnaire:
    """`copier copy --trust <template> <destination>` in a terminal, answered key by key.

    The terminal's output goes through a VT100 emulator (pyte): prompt_toolkit redraws only
    what changed, so the words a person sees exist only on the emulated screen.
    """

    def __init__(
        self,
        copier: Path,
        template: Path,
        destination: str | Path,
        cwd: Path,
        env: dict[str, str] | None = None,
        rows: int = ROWS,
        columns: int = COLUMNS,
    ):
        env = dict(os.environ if env is None else env)
        for name in [k for k in env if k.startswith(("AWS_", "MAKE"))]:
            del env[name]
        env.update(TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1", PYTHONWARNINGS="ignore")
        self.child = pexpect.spawn(
            str(copier),
            ["copy", "--trust", "--vcs-ref", "HEAD", str(template), str(destination)],
            cwd=str(cwd), env=env, encoding="utf-8", timeout=60, dimensions=(rows, columns),
        )  # fmt: skip
        self.terminal = pyte.Screen(columns, rows)
        self.stream = pyte.Stream(self.terminal)
        self.output: list[str] = []
        self.asked: list[str] = []

    def screen(self) -> str:
        return "\n".join(line.rstrip() for line in self.terminal.display)

    def _pump(self, timeout: float) -> bool:
        """Feed what the program printed to the emulator; False if it printed nothing."""
        try:
            data = self.child.read_nonblocking(65536, timeout=timeout)
        except pexpect.TIMEOUT:
            return False
        self.output.append(data)
        self.stream.feed(data)
        return True

    def wait_for(self, text: str, timeout: float = 60) -> str:
        """Wait until `text` is on the screen and the program has stopped drawing."""
        deadline = time.monotonic() + timeout
        while text not in self.screen():
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared; the screen:\n{self.screen()}")
            self._pump(0.2)
        while self._pump(0.3):
            pass
        return self.screen()

    def answer(self, question: str, keys: str = ENTER) -> str:
        """Wait for `question`'s prompt, then press `keys`; return what the prompt showed."""
        screen = self.wait_for(PROMPTS[question])
        self.asked.append(question)
        self.child.send(keys)
        return screen

    def type(self, question: str, text: str) -> str:
        """Replace the prefilled default of a text prompt with `text` and press Enter."""
        return self.answer(question, CLEAR_LINE + text + ENTER)

    def retype(self, refusal: str, text: str) -> None:
        """The prompt refused the last answer with `refusal`: type `text` instead."""
        self.wait_for(refusal)
        self.child.send(CLEAR_LINE + text + ENTER)

    def defaults_from(self, question: str) -> None:
        """Accept the default of `question` and of every later question."""
        for later in ORDER[ORDER.index(question) :]:
            self.answer(later)

    def finish(self) -> str:
        """Wait for copier to end; it must succeed without a traceback."""
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                self._pump(0.5)
            except pexpect.EOF:
                break
        self.child.close()
        output = ANSI.sub("", "".join(self.output))
        assert self.child.exitstatus == 0, f"copier exited {self.child.exitstatus}:\n{output}"
        assert "Traceback" not in output, output
        return output
