"""Keys and tokens for the access-control tests: an HS256 secret, an RSA and
an EC P-256 key pair written where sluiced reads them, and tokens minted by
PyJWT (python3-jwt) -- plus the forgeries a verifier must refuse, which
PyJWT itself will not make (alg none, an HS256 token keyed with the RSA
public key's PEM bytes)."""

import base64
import hashlib
import hmac
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

try:
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
except ImportError:
    print("SKIP: python3-jwt / python3-cryptography are not installed (tools/install-deps.sh test)")
    sys.exit(H.SKIP_EXIT)

SECRET = b"integration-test-secret-0123456789abcdef"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Keys:
    """Writes the key files into directory d; .flags() are sluiced's."""

    def __init__(self, d):
        self.secret_path = os.path.join(d, "hs256.secret")
        with open(self.secret_path, "wb") as f:
            f.write(SECRET + b"\n")
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.rsa_pub_pem = self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.rsa_path = os.path.join(d, "rsa.pem")
        self.ec_path = os.path.join(d, "ec.pem")
        with open(self.rsa_path, "wb") as f:
            f.write(self.rsa_pub_pem)
        with open(self.ec_path, "wb") as f:
            f.write(self.ec.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    def flags(self):
        return ["--auth-hs256-secret-file", self.secret_path,
                "--auth-public-key-file", self.rsa_path,
                "--auth-public-key-file", self.ec_path]

    # -- tokens ------------------------------------------------------------

    @staticmethod
    def claims(pub=(), sub=(), admin=False, exp_in=300, nbf_in=None, name="tester"):
        now = int(time.time())
        c = {"sub": name, "iat": now, "exp": now + exp_in,
             "sluice": {"pub": list(pub), "sub": list(sub), "admin": admin}}
        if nbf_in is not None:
            c["nbf"] = now + nbf_in
        return c

    def hs256(self, claims, secret=SECRET):
        return jwt.encode(claims, secret, algorithm="HS256")

    def rs256(self, claims):
        return jwt.encode(claims, self.rsa, algorithm="RS256")

    def es256(self, claims):
        return jwt.encode(claims, self.ec, algorithm="ES256")

    @staticmethod
    def _forge(header, claims, sign):
        h = b64url(json.dumps(header).encode())
        c = b64url(json.dumps(claims).encode())
        return "%s.%s.%s" % (h, c, b64url(sign(("%s.%s" % (h, c)).encode())))

    def none(self, claims):
        return self._forge({"alg": "none", "typ": "JWT"}, claims, lambda _: b"")

    def confused(self, claims):
        """HS256 keyed with the RSA public key's PEM: valid only for a
        verifier that lets the token pick how a public key is used."""
        return self._forge({"alg": "HS256", "typ": "JWT"}, claims,
                           lambda m: hmac.new(self.rsa_pub_pem, m, hashlib.sha256).digest())

    def cases(self, pub, sub, admin=False):
        """(name, token or None, expected status class) for the matrix:
        401 for every bad token, 403 for a good token without the pattern,
        None for the right one (the route's success status)."""
        right = self.claims(pub, sub, admin)
        wrong = self.claims(["other-*"], ["other-*"])
        return [
            ("no token", None, 401),
            ("expired", self.hs256(self.claims(pub, sub, admin, exp_in=-3600)), 401),
            ("not yet valid", self.hs256(self.claims(pub, sub, admin, nbf_in=3600)), 401),
            ("wrong key", self.hs256(right, b"some-other-secret-0123456789abcdef!!"), 401),
            ("alg none", self.none(right), 401),
            ("hs256 with the rsa public key", self.confused(right), 401),
            ("wrong pattern", self.hs256(wrong), 403),
            ("right pattern hs256", self.hs256(right), None),
            ("right pattern rs256", self.rs256(right), None),
            ("right pattern es256", self.es256(right), None),
        ]
