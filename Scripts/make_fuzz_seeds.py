#!/usr/bin/env python3
"""Writes the hand-made part of the fuzzing seed corpus (Fuzz/Corpus). The rest are copies: the PyTorch fixtures
(Tests/LSTMKitTests/Fixtures/torch_charmodel.safetensors, torch_lstm_state_dict.safetensors, and
torch_variant_packed_bi_proj_l2.safetensors as torch-variant-bi-proj.safetensors: a bidirectional projected
state_dict) and two tiny LSTMKit checkpoints (`lstm train Fuzz/Corpus/corpus/ascii.txt --hidden 8 --layers 1
--embedding 4 --seq-length 8 --batch 2 --steps 2 --val-fraction 0 --checkpoint
Fuzz/Corpus/safetensors/lstmkit-checkpoint.safetensors`, and the same with `--proj 3 --layer-norm --peepholes` into
lstmkit-proj-ln-checkpoint.safetensors; the .metrics.jsonl written beside them is not a seed), and a SequenceModel
file (sequence-model.safetensors: the sine regressor the README example test saves, sine.safetensors), and a
forecaster (forecaster.safetensors: `lstm forecast train Examples/airpassengers.csv --target passengers --members 2
--hidden 4 --steps 20 --checkpoint small.safetensors`, its
.best.safetensors)."""
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Fuzz", "Corpus")


def st(header, data=b""):
    h = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(h)) + h + data


def write(name, data):
    with open(os.path.join(ROOT, name), "wb") as f:
        f.write(data)


write("safetensors/one-f32.safetensors", st({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, struct.pack("<f", 1.5)))
write("safetensors/metadata-only.safetensors", st({"__metadata__": {"format": "lstmkit.charmodel", "format_version": "1"}}))
write("safetensors/f16-bf16-f64.safetensors",
      st({"h": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}, "b": {"dtype": "BF16", "shape": [2], "data_offsets": [4, 8]},
          "d": {"dtype": "F64", "shape": [1, 1], "data_offsets": [8, 16]}}, b"\x00\x3c\x00\xc0\x80\x3f\x00\x40" + struct.pack("<d", 2.0)))
write("safetensors/truncated.safetensors", struct.pack("<Q", 100) + b'{"a":')
write("safetensors/empty", b"")
write("corpus/ascii.txt", b"hello world\nthe quick brown fox jumps over the lazy dog\n")
write("corpus/multibyte.txt", "héllo — ☃ 𝄞 naïve café\n".encode())
write("corpus/invalid-utf8.bin", b"ab\xff\xfecd\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80")
write("corpus/vocabulary.json", b"[10,32,97,98,99,233,9731]")
write("corpus/bom-crlf.txt", "\ufeffline one\r\nline two\r\n".encode())
os.makedirs(os.path.join(ROOT, "csv"), exist_ok=True)
write("csv/monthly.csv", b"month,passengers\n" + b"".join(
    f"{1949 + i // 12}-{i % 12 + 1:02d},{v}\n".encode() for i, v in enumerate(
        [112, 118, 132, 129, 121, 135, 148, 148, 136, 119, 104, 118, 115, 126, 141, 135, 125, 149, 170, 170, 158, 133,
         114, 140, 145, 150, 178, 163, 172])))
write("csv/weekly-long.csv", b'date,store,sales\n2024-01-01,a,1\n2024-01-01,b,2\n2024-01-08,a,\n2024-01-08,b,NaN\n'
      b'2024-01-15,a,3\n2024-01-15,b,"4"\n')
write("csv/quarterly-quoted.csv", b'\xef\xbb\xbftime,"y, value",x\r\n1990Q1,"1",2\r\n1990Q2,3,"say ""hi"""\r\n1990Q3,5,6\r\n')
write("csv/hourly.csv", b"ts,load\n2024-03-01 00:00,1.5\n2024-03-01 01:00,1.25\n2024-03-01 02:00:00,1\n")
