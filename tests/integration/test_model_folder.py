"""The exported model folder: a timm model folder timm loads alone, first-version folders, checked config.json."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
from PIL import Image

from emnist_dist.data.synthetic import render_glyphs
from emnist_dist.cli import run_cli
from emnist_dist.model_folder.artifact import load_model, read_model_info
from emnist_dist.evaluate import main as evaluate_main
from emnist_dist.model_folder.framing import NIST_FRAMING
from emnist_dist.onnx_export import main as onnx_main
from emnist_dist.predict import main as predict_main
from emnist_dist.model_folder.predictor import predict_logits

# Run with timm, torch and numpy only: emnist_dist must not be imported (checked at the end).
TIMM_ALONE = """
import json, sys
import numpy as np, timm, torch
import torch.nn.functional as F
model = timm.create_model("local-dir:" + sys.argv[1], pretrained=True).eval()
cfg = timm.data.resolve_data_config({}, model=model)
x = torch.from_numpy(np.load(sys.argv[2])).float()[:, None] / 255
x = F.interpolate(x, size=cfg["input_size"][1:], mode=cfg["interpolation"], align_corners=False)
x = (x - torch.tensor(cfg["mean"]).view(1, -1, 1, 1)) / torch.tensor(cfg["std"]).view(1, -1, 1, 1)
with torch.inference_mode():
    np.save(sys.argv[3], model(x).numpy())
assert not [m for m in sys.modules if m.startswith("emnist_dist")]
print(json.dumps({"labels": model.pretrained_cfg["label_names"], "in_chans": cfg["input_size"][0],
                  "num_classes": model.num_classes}))
"""


def test_timm_alone_loads_the_export_and_gives_the_same_logits(tmp_path, trained_model_dir):
    glyphs, _ = render_glyphs([str(d) for d in range(10)], 3, seed=21)
    np.save(tmp_path / "glyphs.npy", glyphs)
    done = subprocess.run([sys.executable, "-c", TIMM_ALONE, str(trained_model_dir), str(tmp_path / "glyphs.npy"),
                           str(tmp_path / "logits.npy")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    model, info = load_model(trained_model_dir)
    assert json.loads(done.stdout) == {"labels": info.class_names, "in_chans": 1, "num_classes": 10}
    expected = predict_logits(model, info, glyphs).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "logits.npy"), expected, rtol=1e-5, atol=1e-5)


def _first_version(src, dst):
    """The folder as the first emnist_dist version wrote it: a flat config.json, no framing."""
    shutil.copytree(src, dst)
    new = json.loads((dst / "config.json").read_text())
    old = {"architecture": new["architecture"], "class_names": new["label_names"],
           "image_size": new["pretrained_cfg"]["input_size"][1], "mean": new["pretrained_cfg"]["mean"][0],
           "std": new["pretrained_cfg"]["std"][0], "split": new["emnist_dist"]["split"],
           "source": new["emnist_dist"]["source"], "metrics": new["emnist_dist"]["metrics"], "format_version": 1}
    (dst / "config.json").write_text(json.dumps(old))
    return dst


def test_first_version_folders_are_still_read_with_emnist_framing(tmp_path, trained_model_dir):
    old_dir = _first_version(trained_model_dir, tmp_path / "old")
    model, info = load_model(old_dir)
    new_model, new_info = load_model(trained_model_dir)
    assert info.framing == NIST_FRAMING and new_info.framing != NIST_FRAMING
    assert (info.class_names, info.image_size, info.mean, info.std, info.metrics) == \
        (new_info.class_names, new_info.image_size, new_info.mean, new_info.std, new_info.metrics)
    glyphs, _ = render_glyphs(info.class_names, 2, seed=3)
    torch.testing.assert_close(predict_logits(model, info, glyphs), predict_logits(new_model, new_info, glyphs))


def _set(path: list, value):
    def mutate(config: dict) -> None:
        target = config
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return mutate


_DELETE = object()
BAD_CONFIGS = {
    "mean not a number": (_set(["pretrained_cfg", "mean"], ["dark"]), "pretrained_cfg.mean"),
    "mean NaN": (_set(["pretrained_cfg", "mean"], [math.nan]), "pretrained_cfg.mean"),
    "std zero": (_set(["pretrained_cfg", "std"], [0.0]), "pretrained_cfg.std"),
    "std negative": (_set(["pretrained_cfg", "std"], [-0.3]), "pretrained_cfg.std"),
    "two means": (_set(["pretrained_cfg", "mean"], [0.1, 0.2]), "pretrained_cfg.mean"),
    "image 4 px": (_set(["pretrained_cfg", "input_size"], [1, 4, 4]), "pretrained_cfg.input_size"),
    "image 5000 px": (_set(["pretrained_cfg", "input_size"], [1, 5000, 5000]), "pretrained_cfg.input_size"),
    "image size text": (_set(["pretrained_cfg", "input_size"], [1, "32", "32"]), "pretrained_cfg.input_size"),
    "three channels": (_set(["model_args", "in_chans"], 3), "in_chans"),
    "names not a list": (_set(["label_names"], "0123456789"), "label_names"),
    "a name not a string": (_set(["label_names"], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]), "label_names"),
    "fewer names than classes": (_set(["label_names"], list("012345678")), "label_names"),
    "num_classes text": (_set(["num_classes"], "10"), "num_classes"),
    "architecture number": (_set(["architecture"], 18), "architecture"),
    # timm would fetch a Hub repository, or read another folder's config.json: a model folder stays local.
    "architecture on the Hub": (_set(["architecture"], "hf-hub:evil/model"), "architecture is 'hf-hub:evil/model'"),
    "architecture elsewhere": (_set(["architecture"], "local-dir:/other/path"), "architecture is 'local-dir:"),
    "names repeated": (_set(["label_names"], ["7"] * 10), "'7' is given 10 times"),
    "a blank name": (_set(["label_names"], list("012345678") + [" "]), "label_names"),
    "a name with a line break": (_set(["label_names"], list("012345678") + ["9\n"]), "label_names"),
    "no emnist_dist block": (_set(["emnist_dist"], _DELETE), "emnist_dist"),
    "framing centre": (_set(["emnist_dist", "framing", "centre"], "middle"), "framing.centre"),
    "framing box": (_set(["emnist_dist", "framing", "box"], -1), "framing.box"),
    "metric text": (_set(["emnist_dist", "metrics", "test/acc"], "high"), "emnist_dist.metrics"),
    "not an object": (lambda config: config.clear() or config.update({"list": True}), "no 'architecture'"),
}


@pytest.fixture
def bad_model(tmp_path, trained_model_dir, request):
    mutate, _ = BAD_CONFIGS[request.param]
    model_dir = tmp_path / "model"
    shutil.copytree(trained_model_dir, model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    mutate(config)
    (model_dir / "config.json").write_text(json.dumps(config))
    return model_dir


@pytest.mark.parametrize("bad_model", list(BAD_CONFIGS), indirect=True)
@pytest.mark.parametrize("command", ["predict", "evaluate", "onnx_export"])
def test_a_bad_config_json_is_one_line_naming_the_field(bad_model, command, request, tmp_path, capsys):
    field = BAD_CONFIGS[request.node.callspec.params["bad_model"]][1]
    main, argv = {"predict": (predict_main, ["--model", str(bad_model), str(tmp_path / "x.png")]),
                  "evaluate": (evaluate_main, ["--model", str(bad_model), "--out", str(tmp_path / "report")]),
                  "onnx_export": (onnx_main, ["--model", str(bad_model)])}[command]
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and captured.out == ""
    assert captured.err.startswith(f"error: {bad_model / 'config.json'}: ") and captured.err.count("\n") == 1
    assert field in captured.err, captured.err
    assert not (tmp_path / "report").exists() and not (bad_model / "model.onnx").exists()


def test_read_model_info_reports_json_that_is_not_an_object(tmp_path, trained_model_dir):
    shutil.copytree(trained_model_dir, tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("[1, 2]")
    from emnist_dist.errors import UserError

    with pytest.raises(UserError, match="holds a JSON list; expected an object"):
        read_model_info(tmp_path / "m")


class _RecordingHub(BaseHTTPRequestHandler):
    """A loopback stand-in for the Hugging Face Hub: records each request and answers 404."""

    def _record(self):
        self.server.requests.append(f"{self.command} {self.path}")
        self.send_error(404)

    do_GET = do_HEAD = _record

    def log_message(self, *args):
        pass


def test_a_model_folder_naming_a_hub_repository_is_refused_without_asking_the_hub(tmp_path, trained_model_dir):
    """``python -m emnist_dist.predict`` as shipped, with the Hub endpoint on loopback: nothing is fetched."""
    model_dir = tmp_path / "model"
    shutil.copytree(trained_model_dir, model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    config["architecture"] = "hf-hub:evil/model"
    (model_dir / "config.json").write_text(json.dumps(config))
    glyphs, _ = render_glyphs(["4"], 1, seed=5)
    Image.fromarray(glyphs[0]).save(tmp_path / "four.png")
    hub = ThreadingHTTPServer(("127.0.0.1", 0), _RecordingHub)
    hub.requests = []
    threading.Thread(target=hub.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_TOKEN")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{hub.server_port}", HF_HOME=str(tmp_path / "hf_home"))
    try:
        done = subprocess.run([sys.executable, "-m", "emnist_dist.predict", "--model", str(model_dir),
                               str(tmp_path / "four.png")], capture_output=True, text=True, timeout=120, env=env)
    finally:
        hub.shutdown()
        hub.server_close()
    assert hub.requests == []
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert done.stderr == (f"error: {model_dir / 'config.json'}: architecture is 'hf-hub:evil/model'; expected a timm "
                           "architecture name (one of timm.list_models()); a model folder never points to the Hub "
                           "or another folder\n")


def test_a_model_folder_pointing_to_another_model_folder_is_refused(tmp_path, trained_model_dir, capsys):
    """``local-dir:`` naming a real model folder: timm would silently build whatever that folder describes."""
    model_dir = tmp_path / "model"
    shutil.copytree(trained_model_dir, model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    config["architecture"] = f"local-dir:{trained_model_dir}"
    (model_dir / "config.json").write_text(json.dumps(config))
    glyphs, _ = render_glyphs(["4"], 1, seed=5)
    Image.fromarray(glyphs[0]).save(tmp_path / "four.png")
    with pytest.raises(SystemExit) as exit_info:
        run_cli(predict_main, ["--model", str(model_dir), str(tmp_path / "four.png")])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith(f"error: {model_dir / 'config.json'}: architecture is 'local-dir:")
