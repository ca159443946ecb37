#!/usr/bin/python3
"""Checkpoints shared between tgrad and PyTorch, both ways (the main job's LeNet).

1. tgrad writes its checkpoint and the logits for a fixed input; PyTorch loads
   the checkpoint into the equivalent nn.Sequential (strict load_state_dict)
   and must give the same logits within 1e-5.
2. PyTorch writes a safetensors file of its own model's state_dict, an input
   and its logits; tgrad loads it and must give the same logits within 1e-5.

Run with Debian's interpreter (python3-torch): `make interop`, or
    /usr/bin/python3 examples/torch_interop.py build/examples/torch_interop DIR
The safetensors layout is read and written here with json and struct (the
Python safetensors package is not in Debian): 8-byte little-endian header
length, JSON header, raw little-endian data, as safetensors' own writer does.
"""
import json, os, struct, subprocess, sys

import torch
import torch.nn as nn

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}


def st_read(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(body[b:end]), dtype=DTYPES[e["dtype"]])
        out[name] = t.reshape(e["shape"]).clone()
    return out, header.get("__metadata__", {})


def st_write(path, tensors):
    names = sorted(tensors)
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    inv = {v: k for k, v in DTYPES.items()}
    for k in names:
        t = tensors[k].contiguous()
        raw = t.numpy().tobytes()
        header[k] = {"dtype": inv[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def lenet():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10)).eval()


def main():
    exe, d = sys.argv[1], sys.argv[2]
    os.makedirs(d, exist_ok=True)
    torch.set_num_threads(1)
    ok = True

    # 1. tgrad -> PyTorch
    subprocess.run([exe, "export", d], check=True)
    sd, meta = st_read(os.path.join(d, "tgrad_lenet.safetensors"))
    m = lenet()
    m.load_state_dict(sd, strict=True)
    io, _ = st_read(os.path.join(d, "tgrad_io.safetensors"))
    with torch.no_grad():
        z = m(io["input"])
    diff = (z - io["logits"]).abs().max().item()
    print(f"torch: loaded tgrad's checkpoint ({len(sd)} tensors, crc {meta.get('tgrad_crc32')}); "
          f"logits max |torch - tgrad| = {diff:.3g}")
    ok &= diff <= 1e-5

    # 2. PyTorch -> tgrad
    torch.manual_seed(1)
    m2 = lenet()
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        z2 = m2(x)
    st_write(os.path.join(d, "torch_lenet.safetensors"), m2.state_dict())
    st_write(os.path.join(d, "torch_io.safetensors"), {"input": x, "logits": z2})
    r = subprocess.run([exe, "import", d])
    ok &= r.returncode == 0

    print("interop:", "OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
