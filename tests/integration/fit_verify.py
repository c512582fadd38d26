#!/usr/bin/python3
"""fit_verify.py IMAGE.fit KEYS.dtb - check a signed U-Boot FIT image the
way U-Boot's verified boot does, with python3-libfdt and openssl, none of
mkimage's or the project's code:

  * the default configuration's signature node: the regions of the FIT that
    U-Boot hashes for a configuration signature (doc/usage/fit/signature.rst:
    the struct-block regions of the nodes in "hashed-nodes", less the image
    data properties, then the first hashed-strings[1] bytes of the strings
    block), digested and verified by `openssl dgst -verify` with the RSA key
    that mkimage -K wrote into KEYS.dtb (/signature/key-<key-name-hint>);
  * the configuration and every image it names are among the hashed nodes;
  * each such image's hash nodes hold the digest of its data.

Debian's u-boot-tools ships no fit_check_sign, hence this script. Exit 0
when everything verifies, 1 with the reason otherwise.
"""
import hashlib
import os
import struct
import subprocess
import sys
import tempfile

import libfdt

FDT_BEGIN_NODE, FDT_END_NODE, FDT_PROP, FDT_NOP, FDT_END = 1, 2, 3, 4, 9
# Properties never hashed for a configuration (boot/image-fit-sig.c).
EXCLUDED = {"data", "data-size", "data-position", "data-offset"}
IMAGE_KINDS = ("kernel", "fdt", "ramdisk", "firmware", "loadables", "setup", "fpga")


def die(msg):
    print("FIT verification failed: " + msg)
    sys.exit(1)


def cstr(b, off):
    return b[off:b.index(b"\0", off)].decode()


def find_regions(blob, fdt, inc):
    """U-Boot's fdt_find_regions(add_string_tab = 0) over blob: the byte
    ranges (offset, size) of the struct block that a configuration signature
    covers, given the list of included node paths."""
    base = fdt.off_dt_struct()
    strings = fdt.off_dt_strings()
    regions, start, want, stack, paths = [], -1, 0, [], []
    nxt = 0
    while True:
        off = nxt
        (tag,) = struct.unpack_from(">I", blob, base + off)
        include = 0
        if tag == FDT_BEGIN_NODE:
            name = cstr(blob, base + off + 4)
            nxt = (off + 4 + len(name) + 1 + 3) & ~3
            stop_at = nxt
            parent = paths[-1] if paths else ""
            path = "/" if not paths else (parent.rstrip("/") + "/" + name)
            paths.append(path)
            stack.append(want)
            if want == 1:
                stop_at = off
            if path in inc:
                want = 2
            elif want:
                want -= 1
            else:
                stop_at = off
            include = want
        elif tag == FDT_PROP:
            plen, nameoff = struct.unpack_from(">II", blob, base + off + 4)
            nxt = (off + 12 + plen + 3) & ~3
            stop_at = off
            include = want >= 2 and cstr(blob, strings + nameoff) not in EXCLUDED
        elif tag == FDT_NOP:
            nxt = off + 4
            stop_at = off
            include = want >= 2
        elif tag == FDT_END_NODE:
            nxt = stop_at = off + 4
            include = want
            want = stack.pop()
            paths.pop()
        elif tag == FDT_END:
            nxt = stop_at = off + 4
            include = 1
        else:
            die("bad tag %d at %d" % (tag, off))
        if include and start == -1:
            if regions and off == regions[-1][0] + regions[-1][1] - base:
                start = regions.pop()[0] - base
            else:
                start = off
        if not include and start != -1:
            regions.append((base + start, stop_at - start))
            start = -1
        if tag == FDT_END:
            break
    if nxt != fdt.size_dt_struct():
        die("struct block size")
    regions.append((base + start, nxt - start))
    return regions


def rsa_pem(keys, hint, tmp):
    """The RSA public key of /signature/key-<hint> as PEM (openssl builds
    it from the modulus and exponent mkimage -K wrote)."""
    node = keys.path_offset("/signature/key-" + hint, libfdt.QUIET_NOTFOUND)
    if node < 0:
        die("no key %s in the key blob" % hint)
    n = int.from_bytes(bytes(keys.getprop(node, "rsa,modulus")), "big")
    e = int.from_bytes(bytes(keys.getprop(node, "rsa,exponent")), "big")
    conf = os.path.join(tmp, "key.cnf")
    with open(conf, "w") as f:
        f.write("asn1=SEQUENCE:k\n[k]\nn=INTEGER:0x%x\ne=INTEGER:0x%x\n" % (n, e))
    der, pem = os.path.join(tmp, "key.der"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "asn1parse", "-genconf", conf, "-out", der, "-noout"], check=True)
    subprocess.run(["openssl", "rsa", "-RSAPublicKey_in", "-inform", "DER", "-in", der,
                    "-pubout", "-out", pem], check=True, stderr=subprocess.DEVNULL)
    return pem


def check_images(fit, conf, hashed):
    """Every image the configuration names is hashed, with correct digests."""
    images = fit.path_offset("/images")
    for kind in IMAGE_KINDS:
        prop = fit.getprop(conf, kind, libfdt.QUIET_NOTFOUND)
        if not isinstance(prop, libfdt.Property):
            continue
        for name in bytes(prop).split(b"\0"):
            if not name:
                continue
            name = name.decode()
            img = fit.subnode_offset(images, name)
            path = "/images/" + name
            if path not in hashed:
                die("image %s is not covered by the signature" % name)
            data = bytes(fit.getprop(img, "data"))
            n = 0
            sub = fit.first_subnode(img, libfdt.QUIET_NOTFOUND)
            while sub >= 0:
                sname = fit.get_name(sub)
                if sname.startswith("hash"):
                    if path + "/" + sname not in hashed:
                        die("hash node %s/%s is not signed" % (path, sname))
                    algo = fit.getprop(sub, "algo").as_str()
                    want = bytes(fit.getprop(sub, "value"))
                    if hashlib.new(algo, data).digest() != want:
                        die("image %s: %s digest does not match its data" % (name, algo))
                    n += 1
                sub = fit.next_subnode(sub, libfdt.QUIET_NOTFOUND)
            if n == 0:
                die("image %s has no hash node" % name)


def main():
    blob = open(sys.argv[1], "rb").read()
    fit = libfdt.Fdt(blob)
    keys = libfdt.Fdt(open(sys.argv[2], "rb").read())
    confs = fit.path_offset("/configurations")
    default = fit.getprop(confs, "default").as_str()
    conf = fit.subnode_offset(confs, default)
    sig = fit.subnode_offset(conf, "signature", libfdt.QUIET_NOTFOUND)
    if sig < 0:
        sig = fit.subnode_offset(conf, "signature-1", libfdt.QUIET_NOTFOUND)
    if sig < 0:
        die("configuration %s is not signed" % default)
    algo = fit.getprop(sig, "algo").as_str()
    if not algo.startswith("sha256,rsa"):
        die("unexpected algorithm " + algo)
    hint = fit.getprop(sig, "key-name-hint").as_str()
    value = bytes(fit.getprop(sig, "value"))
    hashed = [s.decode() for s in bytes(fit.getprop(sig, "hashed-nodes")).split(b"\0") if s]
    if "/configurations/" + default not in hashed or "/" not in hashed:
        die("the configuration is not among the hashed nodes")
    check_images(fit, conf, hashed)
    strs = struct.unpack(">II", bytes(fit.getprop(sig, "hashed-strings")))
    regions = find_regions(blob, fit, hashed)
    regions.append((fit.off_dt_strings() + strs[0], strs[1]))
    signed = b"".join(blob[o:o + n] for o, n in regions)
    with tempfile.TemporaryDirectory() as tmp:
        pem = rsa_pem(keys, hint, tmp)
        data, sigf = os.path.join(tmp, "signed"), os.path.join(tmp, "sig")
        open(data, "wb").write(signed)
        open(sigf, "wb").write(value)
        r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", pem, "-signature", sigf, data],
                           capture_output=True, text=True)
        if r.returncode != 0:
            die("configuration %s: signature does not verify (%s)" % (default, r.stdout.strip()))
    print("FIT verified: configuration %s, key %s, %s, %d regions" %
          (default, hint, algo, len(regions)))


if __name__ == "__main__":
    main()
