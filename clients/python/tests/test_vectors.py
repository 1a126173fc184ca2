"""The conformance vectors of wire/testdata/vectors, decoded and encoded
byte for byte (PROTOCOL.md section 11, and the vectors' README)."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import sys
import typing
import unittest


# the package in this tree, before any installed one
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from postbox import wire


def vector_dir() -> str:
    d = os.environ.get("POSTBOX_VECTORS")
    if d:
        return d
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "..", "wire", "testdata", "vectors"))


def load_vectors() -> list[tuple[str, dict]]:
    files = sorted(glob.glob(os.path.join(vector_dir(), "*.json")))
    out = []
    for f in files:
        with open(f, encoding="utf-8") as fh:
            for v in json.load(fh):
                out.append((os.path.basename(f), v))
    return out


def to_fields(obj):
    """A decoded value in the vectors' JSON form."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_fields(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (bytes, bytearray)):
        b = bytes(obj)
        if b and all(0x20 <= c <= 0x7E for c in b):
            return {"utf8": b.decode("ascii")}
        return {"hex": b.hex()}
    if isinstance(obj, list):
        return [to_fields(x) for x in obj]
    return obj


def from_fields(cls, fields):
    """Build a payload value of class cls from the vectors' JSON form."""
    hints = typing.get_type_hints(cls, vars(wire), vars(wire))
    kw = {}
    for f in dataclasses.fields(cls):
        if f.name not in fields:
            continue
        kw[f.name] = _value(hints[f.name], fields[f.name])
    return cls(**kw)


def _value(tp, v):
    if tp is bytes:
        return bytes.fromhex(v["hex"]) if "hex" in v else v["utf8"].encode("ascii")
    if dataclasses.is_dataclass(tp):
        return from_fields(tp, v)
    if typing.get_origin(tp) is list:
        (inner,) = typing.get_args(tp)
        return [_value(inner, x) for x in v]
    return v


VECTORS = load_vectors()


class TestVectors(unittest.TestCase):
    def test_vectors_present(self):
        self.assertGreater(len(VECTORS), 100, f"vectors in {vector_dir()}")
        names = [v["name"] for _, v in VECTORS]
        self.assertEqual(len(names), len(set(names)), "vector names are unique")
        types = {v["payload_type"] for _, v in VECTORS}
        self.assertEqual(types - set(wire.PAYLOAD_TYPES), set(), "every payload type is known")

    def test_each_vector(self):
        checked = 0
        for fname, v in VECTORS:
            with self.subTest(file=fname, vector=v["name"]):
                self.check(v)
                checked += 1
        self.assertEqual(checked, len(VECTORS))

    def check(self, v: dict):
        frame = bytes.fromhex(v["hex"])
        cls = wire.PAYLOAD_TYPES[v["payload_type"]]
        if v.get("error") == "bad_frame":
            with self.assertRaises(wire.DecodeError) as cm:
                wire.decode_header(frame)
            self.assertEqual(cm.exception.kind, "bad_frame")
            return
        h, payload = wire.decode_frame(frame)
        self.assertEqual(dataclasses.asdict(h), v["header"])
        if not v["valid"]:
            with self.assertRaises(wire.DecodeError) as cm:
                cls.decode(payload)
            self.assertEqual(cm.exception.kind, v["error"], str(cm.exception))
            return
        got = cls.decode(payload)
        self.assertEqual(to_fields(got), v["fields"])
        # decoded, then encoded again: the same frame byte for byte
        again = wire.encode_frame(h.op, h.flags, h.request, got.encode(), h.status)
        self.assertEqual(again.hex(), v["hex"])
        # built from the vector's fields alone, then encoded: the same frame
        built = from_fields(cls, v["fields"])
        self.assertEqual(built, got)
        self.assertEqual(wire.encode_frame(h.op, h.flags, h.request, built.encode(), h.status).hex(), v["hex"])


class TestHelpers(unittest.TestCase):
    def test_ext_readers(self):
        """The readers of ext tags the decoders keep raw: PRINCIPAL_NAME,
        OWNER and ACCESS, the cluster entries, PRINCIPAL_USAGE, OUTCOME
        and RECEIVER."""
        by_name = {v["name"]: v for _, v in VECTORS}

        def decode(name):
            v = by_name[name]
            return wire.PAYLOAD_TYPES[v["payload_type"]].decode(bytes.fromhex(v["hex"])[16:])

        alice = "spiffe://example.org/alice"
        self.assertEqual(wire.principal_name(decode("hello-reply-tls-principal").ext), alice)
        self.assertEqual(wire.principal_name(decode("deliver-from-tls-sender").ext), alice)
        self.assertEqual(wire.principal_name(decode("send-reply-receipt-tls-receiver").ext), alice)
        info = decode("stat-reply-remote-owner-and-access")
        self.assertEqual(info.owner, (2, alice))
        self.assertEqual(info.access, [(6, "spiffe://example.org/*"), (2, "CN=ci,O=Example")])
        self.assertIsNone(decode("stat-reply").owner)
        ci = decode("stat-reply-cluster").cluster
        self.assertEqual((ci.cluster, ci.replicas, ci.stream_state, ci.stream),
                         ("east", 3, "leader n1, 2/2 followers current", "PB_0123456789abcdef0123456789abcdef"))
        self.assertIsNone(decode("stat-reply").cluster)
        (pu,) = decode("usage-reply-principal-bucket").principals
        self.assertEqual((pu.name, pu.used.mailboxes, pu.quota.connections), (alice, 2, 256))
        e = decode("call-timeout-in-progress")
        self.assertEqual((e.outcome, e.receiver.endpoint), (wire.OUTCOME_IN_PROGRESS, 11400714817187610626))
        self.assertIsNone(decode("error-not-found").outcome)

    def test_ranges_of(self):
        r = wire.ranges_of([5, 3, 4, 9, 9, 10, 1, 0])
        self.assertEqual([(x.first, x.n) for x in r], [(1, 1), (3, 3), (9, 2)])

    def test_addresses(self):
        for good in (b"jobs", b"a/b:c-d.e_f", b"@1", b"@18446744073709551615"):
            self.assertTrue(wire.valid_address(good), good)
        for bad in (b"", b"@", b"@abc", b"@1x", b"@-1", b"@007", b"@0", b"a*", b"x" * 201,
                    b"@18446744073709551616"):
            self.assertFalse(wire.valid_address(bad), bad)

    def test_build_headers(self):
        h = wire.build_headers(reply_to="@1", correlation_id=b"42", deadline_ns=5, content_type="text/plain",
                               user=[("k", "v"), ("k", "w")])
        self.assertIsNone(wire.check_headers(h))
        tags = [t for t, _ in wire.parse_headers(h)]
        self.assertEqual(tags, [1, 2, 3, 4, 5, 5])
        with self.assertRaises(ValueError):
            wire.build_headers(content_type="a\nb")
        with self.assertRaises(ValueError):
            wire.build_headers(reply_to="@007")
        with self.assertRaises(ValueError):
            wire.build_headers(user=[("bad key", "v")])


if __name__ == "__main__":
    unittest.main()
