"""Issue 14, item 5 (training edges): every training argument checked before any work, exit 2
with one line; a run folder is never silently replaced or resumed into by another model."""
import pytest

from latentforge.runtime.cli import main

pytest.importorskip("torch")


def train_cmd(data_dir, out, *extra, model="vae-dense"):
    small = ["--hidden", "64,32", "--latent-dim", "4"] if model == "vae-dense" else []
    return ["train", model, *small, "--epochs", "1", "--batch-size", "32", "--limit", "64",
            "--val-size", "32", "--data-dir", str(data_dir), "--out", str(out), "--quiet",
            *extra]


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and not any("Traceback" in line for line in err), err
    return err[-1]


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("runs") / "vae"
    assert main(train_cmd(data_dir, out)) == 0
    return out


@pytest.mark.parametrize("flag,value,match", [
    ("--batch-size", "0", "--batch-size must be a positive integer"),
    ("--limit", "0", "--limit must be a positive integer"),
    ("--epochs", "0", "--epochs must be a positive integer"),
    ("--val-size", "-5", "--val-size must be"),
    ("--lr", "-1", "--lr must be a finite number >= 0.0"),
    ("--ema-decay", "1.5", "--ema-decay must be in [0, 1)")])
def test_out_of_range_training_numbers_exit_2_before_any_work(tmp_path, data_dir, capsys,
                                                              flag, value, match):
    out = tmp_path / "new"
    assert main(train_cmd(data_dir, out, flag, value)) == 2
    assert match in error_line(capsys)
    assert not out.exists()


def test_new_run_into_an_existing_run_needs_resume_or_overwrite(run, data_dir, capsys):
    before = (run / "last.pt").stat().st_mtime_ns
    assert main(train_cmd(data_dir, run)) == 2
    assert "--resume or replace it with --overwrite" in error_line(capsys)
    assert (run / "last.pt").stat().st_mtime_ns == before


def test_overwrite_starts_a_new_run(tmp_path, data_dir):
    out = tmp_path / "again"
    assert main(train_cmd(data_dir, out)) == 0
    assert main(train_cmd(data_dir, out, "--overwrite")) == 0


def test_resume_with_nothing_to_resume_says_so(tmp_path, data_dir, capsys):
    assert main(train_cmd(data_dir, tmp_path / "empty", "--resume")) == 2
    assert "nothing to resume" in error_line(capsys)


def test_resume_into_another_models_folder_is_refused(run, data_dir, capsys):
    assert main(train_cmd(data_dir, run, "--resume", model="ae-dense2")) == 2
    assert "is a 'vae-dense' run, not 'ae-dense2'" in error_line(capsys)


@pytest.mark.parametrize("extra,match", [
    (["--latent-dim", "6"], "--latent-dim 6 contradicts its 4"),
    (["--beta", "5"], "--beta 5.0 contradicts the checkpoint's 1.0")])
def test_resume_refuses_flags_that_contradict_the_checkpoint(run, data_dir, capsys, extra,
                                                             match):
    cmd = train_cmd(data_dir, run, "--resume", "--epochs", "2")
    cmd = cmd[:cmd.index("--latent-dim")] + cmd[cmd.index("--latent-dim") + 2:] + extra
    assert main(cmd) == 2
    assert match in error_line(capsys)


def test_corrupt_checkpoint_never_suggests_weights_only_false(tmp_path, data_dir, capsys):
    out = tmp_path / "bad"
    out.mkdir()
    (out / "last.pt").write_bytes(b"PK\x03\x04 not really a zip")
    assert main(train_cmd(data_dir, out, "--resume")) == 2
    line = error_line(capsys)
    assert "cannot load checkpoint" in line and "weights_only=False" not in line
