"""tools/reproducibility_digests.py: what is compared bit for bit (the run
itself takes minutes and is a benchmark, not a test)."""
import json
import math

from tools import reproducibility_digests


def _module():
    return reproducibility_digests


def test_timing_and_stamps_are_dropped_everything_else_kept(tmp_path):
    rd = _module()
    record = {"psnr": [14.1, 13.3], "train_time_s": 0.4, "inference_patterns_per_s": 800.0,
              "figures": ["a.png"], "compare_key": {"source_stamp": 17, "seed": 3},
              "methods": [{"total_time_s": 1.0, "ssim": [0.1, 0.7], "time_s": 2.0}]}
    assert rd.comparable(record) == {"psnr": [14.1, 13.3], "compare_key": {"seed": 3},
                                     "methods": [{"ssim": [0.1, 0.7]}]}
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(record))
    b.write_text(json.dumps({**record, "train_time_s": 9.9, "compare_key": {"seed": 3,
                                                                            "source_stamp": 1}}))
    assert rd.digest(a) == rd.digest(b)
    b.write_text(json.dumps({**record, "psnr": [14.1, math.nextafter(13.3, 14.0)]}))  # one ulp
    assert rd.digest(a) != rd.digest(b)
