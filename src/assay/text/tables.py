"""Published constant tables the quality rule sets share (datatrove's punctuation sets,
spaCy's sentence-final characters, Gopher's stop words)."""

from __future__ import annotations

# datatrove.utils.text.PUNCTUATION: ASCII and CJK punctuation plus the C0/C1 control
# characters except tab and newline (0-8, 11-31 and 127-159).
PUNCTUATION: str = (
    "!/—”:％１〈&(、━\\【#%「」，】；+^]~“《„';’{|∶´[=-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»"
    + "".join(chr(x) for a, b in ((0, 9), (11, 13), (13, 32), (127, 160)) for x in range(a, b))
)

# Sentence-final punctuation of spaCy's sentencizer (``Sentencizer.default_punct_chars``).
SENTENCE_PUNCTUATION: frozenset[str] = frozenset(
    "!.?։؟۔܀܁܂߹।॥၊။።፧፨᙮᜵᜶᠃᠉᥄᥅᪨᪩᪪᪫᭚᭛᭞᭟᰻᰼᱾᱿‼‽⁇⁈⁉⸮⸼꓿꘎꘏꛳꛷꡶꡷꣎꣏꤯꧈꧉꩝꩞꩟꫰꫱꯫﹒﹖﹗！．？"
    "𐩖𐩗𑁇𑁈𑂾𑂿𑃀𑃁𑅁𑅂𑅃𑇅𑇆𑇍𑇞𑇟𑈸𑈹𑈻𑈼𑊩𑑋𑑌𑗂𑗃𑗉𑗊𑗋𑗌𑗍𑗎𑗏𑗐𑗑𑗒𑗓𑗔𑗕𑗖𑗗𑙁𑙂𑜼𑜽𑜾𑩂𑩃𑪛𑪜𑱁𑱂𖩮𖩯𖫵𖬷𖬸𖭄𛲟𝪈｡。"
)

# datatrove.utils.text.TERMINAL_PUNCTUATION: the sentencizer's characters plus a few more
# (Samaritan, Khmer, Arabic, Sogdian, Old Uyghur, Dives Akuru, Makasar, Kawi, Medefaidrin,
# Balinese and two medieval marks).
TERMINAL_PUNCTUATION: frozenset[str] = SENTENCE_PUNCTUATION | frozenset(
    "\u0837\u0839\u083d\u083e\u061d\u061e\u17d4\u17d5\u17d6\u17d9\u17da\u1b7d\u1b7e"
    "\u2e53\u2e54\U00010f55\U00010f56\U00010f57\U00010f58\U00010f59\U00010f86\U00010f87"
    "\U00010f88\U00010f89\U00011944\U00011946\U00011ef7\U00011ef8\U00011f43\U00011f44"
    "\U00016e98"
)

# datatrove.utils.text.PUNCTUATION_SET: a word made only of these is a "symbol" word.
PUNCTUATION_SET: frozenset[str] = frozenset(PUNCTUATION) | TERMINAL_PUNCTUATION

# Rae et al. 2021, Gopher/MassiveText quality filter: a document must contain at least
# two of these English words.
GOPHER_STOP_WORDS: tuple[str, ...] = ("the", "be", "to", "of", "and", "that", "have", "with")
