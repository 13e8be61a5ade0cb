"""Tensor files in shards below a size limit (explorer.shards), and a training run that resumes from them."""
from __future__ import annotations

import pytest
import torch

from explorer import shards


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {f"{i}.exp_avg": torch.randn(1000, generator=g) for i in range(5)} | {"0.step": torch.tensor(7.0)}


def test_tensors_that_fit_stay_one_file_and_round_trip(tmp_path):
    t = _tensors()
    assert shards.save_sharded(t, tmp_path, "optimizer") == [tmp_path / "optimizer.safetensors"]
    back = shards.load_sharded(tmp_path, "optimizer")
    assert back.keys() == t.keys() and all(torch.equal(back[k], t[k]) for k in t)


def test_larger_tensors_are_split_into_shards_below_the_limit_with_whole_tensors(tmp_path):
    t = _tensors()  # five 4000-byte tensors: at most two per 9000-byte shard
    paths = shards.save_sharded(t, tmp_path, "optimizer", max_bytes=9000)
    assert [p.name for p in paths] == [f"optimizer-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    assert all(p.stat().st_size < 9000 + 1000 for p in paths)  # data plus a small header
    back = shards.load_sharded(tmp_path, "optimizer")
    assert back.keys() == t.keys() and all(torch.equal(back[k], t[k]) for k in t)


def test_saving_in_the_other_layout_removes_the_old_files(tmp_path):
    t = _tensors()
    shards.save_sharded(t, tmp_path, "optimizer", max_bytes=9000)
    shards.save_sharded(t, tmp_path, "optimizer")  # fits now: one file, the shards go
    assert sorted(p.name for p in tmp_path.iterdir()) == ["optimizer.safetensors"]
    shards.save_sharded(t, tmp_path, "optimizer", max_bytes=5000)  # five shards: the single file goes
    assert len(list(tmp_path.iterdir())) == 5 and not (tmp_path / "optimizer.safetensors").exists()
    shards.save_sharded({"0.exp_avg": t["0.exp_avg"], "1.exp_avg": t["1.exp_avg"]}, tmp_path, "optimizer", max_bytes=5000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["optimizer-00001-of-00002.safetensors",
                                                        "optimizer-00002-of-00002.safetensors"]


def test_a_missing_shard_or_file_is_an_error_that_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="optimizer.safetensors: missing"):
        shards.load_sharded(tmp_path, "optimizer")
    paths = shards.save_sharded(_tensors(), tmp_path, "optimizer", max_bytes=9000)
    paths[1].unlink()
    with pytest.raises(FileNotFoundError, match="2 shard files, expected 3"):
        shards.load_sharded(tmp_path, "optimizer")
