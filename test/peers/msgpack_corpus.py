#!/usr/bin/python3
"""Awkward msgpack values, packed by Debian's python3-msgpack, for the value fidelity test.

    /usr/bin/python3 test/peers/msgpack_corpus.py corpus     -> one JSON object on stdout (below)
    /usr/bin/python3 test/peers/msgpack_corpus.py spans < HEX -> {key: hex of its value's bytes} of a msgpack map

Every msgpack is given as hex. `corpus` gives, for each direction, what a backend or a grading
container (both Python, `use_bin_type=True`) sends, and what the Python agent would forward
for it: packb(unpackb(x, use_list=False, strict_map_key=False), use_bin_type=True). (On the
container side the Python agent unpacks with strict keys and fails on a non-str key; the
agent keeps such keys in inputdata, as the backend link does, and refuses them in a result.) A value whose str is not UTF-8 cannot be
loaded at all (raw=False): "expected" is null for it. A custom with a key that is not a str
(custom_int_keys) is not forwarded: the frontend could not store it, the job crashes.
"""
import json, math, sys
import msgpack


def pack(v):
    return msgpack.packb(v, use_bin_type=True)


def python_agent(b):
    """What the Python agent forwards for bytes b, or None when it cannot load them."""
    try:
        return pack(msgpack.unpackb(b, use_list=False, strict_map_key=False, raw=False))
    except Exception:
        return None


def corpus():
    """name -> value; keys are valid INGInious ids, so every non-map value may also be a test or a problem."""
    return {
        "whole_float": 2.0, "zero_float": 0.0, "negative_zero": -0.0, "big_float": 1e300,
        "nan": math.nan, "inf": math.inf, "minus_inf": -math.inf, "half": 0.5,
        "two_53_plus_1": 2 ** 53 + 1, "min_int64": -2 ** 63, "max_uint64": 2 ** 64 - 1, "two_63": 2 ** 63,
        "minus_one": -1, "zero": 0, "true": True, "none": None,
        "empty_map": {}, "empty_list": [], "empty_str": "", "empty_bytes": b"",
        "int_keys": {1: "one", -1: "minus one", 2 ** 64 - 1: "big", 2.5: "float", None: "nil", True: "bool",
                     (1, (2, 3)): "tuple", b"k": "bytes"},
        "nested_tuples": ((1, (2.0, (3, ()))), ()),
        "nested_maps": {"a": [1.0, {"x": 3.0, "y": [{"z": 2 ** 63}]}]},
        "unicode": "h\u00e9llo w\u00f6rld \u2713 \U0001F600 \u4e2d\u6587",
        "bytes": bytes(range(256)),
        "timestamp32": msgpack.Timestamp(1, 0), "timestamp64": msgpack.Timestamp(1, 5),
        "timestamp96": msgpack.Timestamp(2 ** 34 + 1, 999999999), "negative_timestamp": msgpack.Timestamp(-1, 0),
        "ext": msgpack.ExtType(5, b"xyz"), "fixext16": msgpack.ExtType(127, b"0123456789abcdef"),
        "key_order": {"z": 1, "a": 2, "m": 3, "b": {"y": 1, "c": 2}},
        "long_str": "x" * 70000, "long_list": list(range(70000)),
    }


def entry(sent):
    expected = python_agent(sent)
    return {"sent": sent.hex(), "expected": None if expected is None else expected.hex()}


def main():
    if sys.argv[1] == "spans":
        b = bytes.fromhex(sys.stdin.read().strip())
        u = msgpack.Unpacker(raw=False, strict_map_key=False, use_list=False, max_buffer_size=len(b))
        u.feed(b)
        out = {}
        for _ in range(u.read_map_header()):
            key = u.unpack()
            start = u.tell()
            u.skip()
            out[key] = b[start:u.tell()].hex()
        json.dump(out, sys.stdout)
        return
    values = corpus()
    flat = {k: v for k, v in values.items() if not isinstance(v, dict)}
    # what reaches the frontend has string keys only (MongoDB stores no other)
    string_keys = {k: v for k, v in values.items() if k != "int_keys"}
    inputdata = dict({"@state": "old state", "mode": "echo-input"}, **values)
    # a str whose bytes are not UTF-8: Python's own unpack (raw=False) fails on it
    bad_str = b"\xa3\xc3\x28\xff"
    json.dump({
        "inputdata": entry(pack(inputdata)),
        "custom": entry(pack(string_keys)),
        "custom_int_keys": entry(pack(values)),
        "tests": entry(pack(flat)),
        "problems": entry(pack(flat)),
        "state": entry(pack(values["unicode"])),
        "bad_str": entry(bad_str),
        "bad_custom": entry(b"\x81\xa1x" + bad_str),
    }, sys.stdout)


main()
