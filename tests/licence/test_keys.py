"""HQ's signing keys on disk and the pinned public keys, stated from the specifications they follow.

RFC 8037 (Ed25519 JWK) gives a test key whose RFC 7638 thumbprint is known;
the on-disk layout is docs/hq-api.md's: `<hq_dir>/keys/<kid>.pem` (0600, in a
0700 directory) and `keys/index.json`.
"""

from __future__ import annotations

import json
import os
import re
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kitcore.errors import InvalidInput, KitError
from kitcore.licence import keys as keys_module
from kitcore.licence.keys import (
    HQKeyStore,
    PinnedKeys,
    b64url,
    b64url_decode,
    load_jwks,
    public_jwk,
    thumbprint,
    write_private,
)

RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"  # RFC 8037 appendix A.2
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"  # RFC 8037 appendix A.3
RFC_KEY = Ed25519PublicKey.from_public_bytes(b64url_decode(RFC8037_X))


def test_thumbprint_and_jwk_follow_the_rfcs():
    assert thumbprint(RFC_KEY) == RFC8037_THUMBPRINT
    assert public_jwk("k1", RFC_KEY) == {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X, "kid": "k1", "alg": "EdDSA",
                                         "use": "sig"}


@pytest.mark.parametrize("raw, text", [(b"", ""), (b"f", "Zg"), (b"fo", "Zm8"), (b"foo", "Zm9v"), (b"\xfb\xff", "-_8"),
                                       (b"foobarb", "Zm9vYmFyYg"),  # ten characters: two "=" put back to decode
                                       (b"\x00\x00\x17", "AAAX")])  # ends in "X": only "=" is stripped
def test_base64url_without_padding(raw, text):
    assert b64url(raw) == text and b64url_decode(text) == raw


def test_the_key_store_on_disk(tmp_path):
    store = HQKeyStore(tmp_path / "hq")
    with pytest.raises(KitError, match=r"^no HQ signing key in .*hq; run `kitctl hq keys init` first$"):
        store.current_kid()
    first = store.init()
    keys_dir = tmp_path / "hq" / "keys"
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    assert sorted(p.name for p in keys_dir.iterdir()) == sorted(["index.json", f"{first.kid}.pem"])
    assert stat.S_IMODE((keys_dir / f"{first.kid}.pem").stat().st_mode) == 0o600
    assert len(first.kid) == 16 and first.kid == thumbprint(store.public_key(first.kid))[:16]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", first.created)
    index = json.loads((keys_dir / "index.json").read_text())
    assert index == {"current": first.kid, "keys": [{"kid": first.kid, "created": first.created, "retired": None}]}
    assert (keys_dir / "index.json").read_text() == json.dumps(index, indent=2, sort_keys=True)  # stable, diffable
    with pytest.raises(InvalidInput, match=r"^HQ keys already exist in .*hq; use `kitctl hq keys rotate`$"):
        store.init()

    second = store.rotate()
    assert store.current_kid() == second.kid and [k.kid for k in store.keys()] == [first.kid, second.kid]
    assert [k["kid"] for k in store.jwks()["keys"]] == [first.kid, second.kid]
    with pytest.raises(InvalidInput, match="^the current signing key cannot be retired; rotate first$"):
        store.retire(second.kid)
    with pytest.raises(InvalidInput, match="^no key with kid 'nope'$"):
        store.retire("nope")
    store.retire(first.kid)
    assert [k["kid"] for k in store.jwks()["keys"]] == [second.kid]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", store.keys()[0].retired or "")
    assert not list(keys_dir.glob("*.tmp"))
    assert set(store.pinned().by_kid) == {second.kid}


def test_init_takes_an_empty_keys_directory_that_is_already_there(tmp_path):
    """A keys directory without an index (an earlier init stopped before writing it, or made by the operator with
    its mode) is no key store yet: init makes the first key in it."""
    (tmp_path / "hq" / "keys").mkdir(parents=True, mode=0o700)
    store = HQKeyStore(tmp_path / "hq")
    first = store.init()
    assert store.current_kid() == first.kid and store.signing_key()[0] == first.kid


def test_a_private_key_file_is_0600_from_its_first_byte(tmp_path, monkeypatch):
    monkeypatch.setattr(keys_module.os, "chmod", lambda *a, **k: None)  # no fixing up afterwards
    old = os.umask(0o022)
    try:
        write_private(tmp_path / "a" / "b" / "k.pem", b"secret")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a" / "b" / "k.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700
    assert (tmp_path / "a" / "b" / "k.pem").read_bytes() == b"secret"


JWK = {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X, "kid": "k1"}


@pytest.mark.parametrize("doc, message", [
    ([], 'HQ keys: not a JWKS document (expected {"keys": [...]})'),
    ({"keys": []}, 'HQ keys: not a JWKS document (expected {"keys": [...]})'),
    ({"keys": ["k"]}, "HQ keys: a key entry is not an object"),
    ({"keys": [{**JWK, "kty": "EC"}]}, "HQ keys: only Ed25519 (kty OKP) keys are accepted"),
    ({"keys": [{**JWK, "crv": "X25519"}]}, "HQ keys: only Ed25519 (kty OKP) keys are accepted"),
    ({"keys": [{**JWK, "kid": ""}]}, "HQ keys: a key lacks its kid or x"),
    ({"keys": [{**JWK, "kid": 5}]}, "HQ keys: a key lacks its kid or x"),
    ({"keys": [{k: v for k, v in JWK.items() if k != "x"}]}, "HQ keys: a key lacks its kid or x"),
    ({"keys": [{**JWK, "x": RFC8037_X[:-2]}]}, "HQ keys: key 'k1' is not a valid Ed25519 public key"),
])
def test_bad_jwks_documents_are_refused_in_one_line(doc, message):
    with pytest.raises(InvalidInput) as refused:
        PinnedKeys.from_jwks(doc)
    assert str(refused.value) == message


def test_jwks_files(tmp_path):
    good = tmp_path / "keys.json"
    good.write_text(json.dumps({"keys": [JWK]}), encoding="utf-8")
    assert set(load_jwks(good).by_kid) == {"k1"} and set(load_jwks(str(good)).by_kid) == {"k1"}
    assert set(load_jwks({"keys": [JWK]}).by_kid) == {"k1"}
    padded = json.dumps({"keys": [{**JWK, "kid": "星"}]}, ensure_ascii=False)
    at_limit = tmp_path / "limit.json"
    at_limit.write_text(padded + " " * (65_536 - len(padded.encode())), encoding="utf-8")
    assert set(load_jwks(at_limit).by_kid) == {"星"}  # 64 KiB exactly, UTF-8
    over = tmp_path / "over.json"
    over.write_text(padded + " " * (65_537 - len(padded.encode())), encoding="utf-8")
    for path, why in ((over, "is too large"), (tmp_path / "missing.json", "does not exist")):
        with pytest.raises(InvalidInput) as refused:
            load_jwks(path)
        assert str(refused.value) == f"HQ keys file {path} {why}"
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(InvalidInput) as refused:
        load_jwks(tmp_path / "bad.json")
    assert str(refused.value) == f"HQ keys file {tmp_path / 'bad.json'} is not JSON"


def test_the_signing_key_is_parsed_once_per_index_and_a_rotation_is_seen_at_once(tmp_path, monkeypatch):
    """HQ signs every command it hands out (10,000 for a fleet-wide one): the key is read and parsed once, not
    per signature; a rotation (in this process or by `kitctl hq keys rotate` in another) replaces the index."""
    from cryptography.hazmat.primitives import serialization

    store = HQKeyStore(tmp_path)
    first = store.init()
    parsed: list[bytes] = []
    real = serialization.load_pem_private_key

    def counting(data: bytes, password: None) -> object:
        parsed.append(data)
        return real(data, password=password)

    monkeypatch.setattr(keys_module.serialization, "load_pem_private_key", counting)
    kids = {store.signing_key()[0] for _ in range(50)}
    assert kids == {first.kid} and len(parsed) == 1
    second = HQKeyStore(tmp_path).rotate()  # another process's store: only the file changes
    assert store.signing_key()[0] == second.kid and len(parsed) == 2
    assert store.signing_key()[0] == second.kid and len(parsed) == 2
