#!/usr/bin/env python3
"""Regenerates nft_replace_golden.hex: the nfnetlink batch that the `nft` binary sends for
golden.nft, which the netlink encoder's test compares byte for byte with its own batch.

Run as root from this directory:  ./capture_golden.py [golden.nft] [nft_replace_golden.hex]

It loads the file with `nft -f` under `strace` inside a throwaway network namespace (deleted
afterwards, even on failure), takes the data of the one sendmsg() that carries the batch and
writes it one netlink message per block, with a comment naming each message.
"""

import os
import re
import struct
import subprocess
import sys
import tempfile


def capture(nft_file: str) -> bytes:
    netns = f"ironlb-golden-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        with tempfile.NamedTemporaryFile("r", suffix=".strace") as trace:
            subprocess.run(
                ["ip", "netns", "exec", netns, "strace", "-f", "-e", "trace=sendmsg",
                 "-e", "write=3", "-o", trace.name, "nft", "-f", nft_file],
                check=True,
            )
            dump = trace.read()
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)
    # strace prints the buffer of each sendmsg as " | OFFSET  hex bytes ...  ascii |" lines.
    data = bytearray()
    for line in dump.splitlines():
        match = re.match(r" \| [0-9a-f]{5}  ((?:[0-9a-f]{2} {1,2}){1,16})", line)
        if match:
            data.extend(bytes.fromhex(match.group(1).replace(" ", "")))
    if not data:
        sys.exit("no sendmsg data captured")
    return bytes(data)


def messages(batch: bytes):
    offset = 0
    while offset < len(batch):
        length, msg_type, flags, seq = struct.unpack_from("=IHHI", batch, offset)
        yield seq, msg_type, flags, batch[offset:offset + length]
        offset += (length + 3) & ~3


def main() -> None:
    nft_file = sys.argv[1] if len(sys.argv) > 1 else "golden.nft"
    out_file = sys.argv[2] if len(sys.argv) > 2 else "nft_replace_golden.hex"
    version = subprocess.run(["nft", "--version"], capture_output=True, text=True).stdout.strip()
    lines = [
        f"# The nfnetlink batch that {version} sent for {os.path.basename(nft_file)},",
        "# captured by capture_golden.py (strace of `nft -f` in a throwaway namespace).",
        "# One netlink message per block; '#' lines are comments. nft sets no NLM_F_ACK; ironlb's",
        "# encoder sets it on the last message inside the batch, which the test accounts for.",
    ]
    for seq, msg_type, flags, message in messages(capture(nft_file)):
        lines.append(f"# seq {seq} type 0x{msg_type:04x} flags 0x{flags:04x} len {len(message)}")
        for start in range(0, len(message), 16):
            lines.append(" ".join(f"{b:02x}" for b in message[start:start + 16]))
    with open(out_file, "w") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
