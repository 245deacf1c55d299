"""`--exclude-digits` (issue 17): leave-one-digit-out training data for anomaly detectors."""
import numpy as np
import pytest

from latentforge.runtime.cli import main
from latentforge.train.data import load_splits
from latentforge.train.trainer import TrainArgs, train


# ---------------------------------------------------------------- --exclude-digits
@pytest.mark.parametrize("drop", [(7,), (0, 3)])
def test_exclude_digits_removes_exactly_those_labels(data_dir, drop):
    full = load_splits(data_dir, val_size=200)
    held = load_splits(data_dir, val_size=200, exclude_digits=drop)
    for split in ("train", "val"):
        before = np.bincount(full[split].labels, minlength=10)
        after = np.bincount(held[split].labels, minlength=10)
        assert after[list(drop)].sum() == 0
        keep = [d for d in range(10) if d not in drop]
        np.testing.assert_array_equal(after[keep], before[keep])  # every other image stays
        assert len(held[split]) == len(full[split]) - before[list(drop)].sum()
    np.testing.assert_array_equal(held["test"].labels, full["test"].labels)  # test keeps all


@pytest.mark.parametrize("bad, match", [((10,), "0-9"), ((-1,), "0-9"),
                                        (tuple(range(10)), "every class")])
def test_exclude_digits_rejects_bad_digits(data_dir, bad, match):
    with pytest.raises(ValueError, match=match):
        load_splits(data_dir, val_size=200, exclude_digits=bad)
    with pytest.raises(ValueError, match=match):
        train(TrainArgs(model="vae-conv", exclude_digits=bad, dry_run=True,
                        data_dir=str(data_dir)))


def test_exclude_digits_cli_flag_is_checked(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "vae-conv", "--exclude-digits", "12", "--dry-run"])
    assert e.value.code == 2 and "digits 0-9" in capsys.readouterr().err


def test_exclude_digits_is_recorded_and_resume_keeps_it(data_dir, tmp_path, capsys):
    from latentforge.export.ship import command_line

    out = tmp_path / "run"
    args = dict(model="ae-dense1", latent_dim=4, epochs=1, limit=64, val_size=50,
                data_dir=str(data_dir), out=str(out), quiet=True)
    ckpt = train(TrainArgs(**args, exclude_digits=(7,)))
    assert tuple(ckpt["args"]["exclude_digits"]) == (7,)
    assert "--exclude-digits 7" in command_line(ckpt)
    assert "digits (7,) excluded" in capsys.readouterr().out
    with pytest.raises(ValueError, match="--exclude-digits"):
        train(TrainArgs(**{**args, "epochs": 2}, exclude_digits=(3,), resume=True))
