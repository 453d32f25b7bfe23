"""A plugin's mistake is one line naming plugin, hook and file:line (exit 2); --traceback
shows the whole trace."""

import subprocess
import sys

import pytest

from keras_edge import hookimpl
from keras_edge.errors import PluginError
from keras_edge.plugins import get_plugin_manager
from keras_edge.testing import run_with_plugins

HERE = __file__


class RaisesInLossTerms:
    @hookimpl
    def loss_terms(self, outputs):
        raise ValueError("bad term")


class RaisesInAugment:
    @hookimpl
    def augment_batch(self, batch):
        return {**batch, "image": batch["image"] * undefined_name}  # noqa: F821


@pytest.mark.parametrize("plugin, hook, text", [
    (RaisesInLossTerms(), "loss_terms", "ValueError: bad term"),
    (RaisesInAugment(), "augment_batch", "NameError"),
])
def test_an_error_while_a_hook_is_traced_names_plugin_hook_and_line(capsys, plugin, hook, text):
    from keras_edge.cli import main  # noqa: F401  (the CLI's own unwrapping is tested below)
    from keras_edge.errors import user_error

    with pytest.raises(Exception) as info:
        run_with_plugins({"bad": plugin}, train={"epochs": 1})
    error = user_error(info.value)
    assert isinstance(error, PluginError), type(info.value)
    message = str(error)
    assert f"plugin 'bad' failed in hook '{hook}'" in message and text in message
    assert f"{HERE}:" in message  # the file and line of the plugin's code


class WrongArgument:
    @hookimpl
    def on_epoch_end(self, ctx, log):
        pass


class Misspelt:
    @hookimpl
    def on_epoch_ends(self, ctx):
        pass


def test_a_wrong_argument_name_is_one_line_with_what_the_hook_offers():
    with pytest.raises(PluginError, match=r"plugin 'wrong' failed in hook 'on_epoch_end': argument\(s\) \{'log'\}"
                       r" are not offered by this hook .*test_plugin_errors.py:\d+\); it offers \('ctx', 'logs'"):
        get_plugin_manager({"wrong": WrongArgument()})


def test_a_misspelt_hook_says_did_you_mean():
    with pytest.raises(PluginError, match=r"hook 'on_epoch_ends': no such hook .*did you mean 'on_epoch_end'\?"):
        get_plugin_manager({"typo": Misspelt()})


def test_a_plugin_with_a_syntax_error_is_skipped_with_one_warning(tmp_path):
    """Installed with a syntax error: other commands still work; the warning names file:line."""
    (tmp_path / "broken_plugin.py").write_text("def on_epoch_end(ctx:\n    pass\n")
    info = tmp_path / "broken_plugin-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text("[keras_edge]\nbroken = broken_plugin\n")
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); from keras_edge.cli import main; main(['plugins'])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "plugin 'broken' cannot be imported: SyntaxError" in warning[0], proc.stderr
    assert "broken_plugin.py:1" in warning[0]
    assert "checkpoints" in proc.stdout and "broken" in proc.stdout


def test_traceback_flag_shows_the_whole_trace(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text("[train]\nepochs = 'x'\n")
    short = subprocess.run([sys.executable, "-m", "keras_edge", "run", str(recipe)], capture_output=True, text=True)
    full = subprocess.run([sys.executable, "-m", "keras_edge", "--traceback", "run", str(recipe)],
                          capture_output=True, text=True)
    assert short.returncode == 2 and "Traceback" not in short.stderr
    assert full.returncode == 1 and "Traceback (most recent call last)" in full.stderr and "RecipeError" in full.stderr
