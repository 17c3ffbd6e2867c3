"""Text kernels, one file per reference rule they reproduce.

* :mod:`.tables`: published constant tables (datatrove's punctuation, spaCy's sentence ends,
  Gopher's stop words);
* :mod:`.spacy_words`: spaCy's English word tokenizer, as datatrove's quality filters use it;
* :mod:`.ngram_hashes`: hashes of every word n-gram of a batch (Gopher's repetition counts);
* :mod:`.hashing`: word and shingle hashes of normalised text (MinHash, decontamination);
* :mod:`.wordpunct`: NLTK's ``WordPunctTokenizer`` words and hashed n-gram counts (DSIR,
  the quality classifier, the n-gram LM);
* :mod:`.decon_words`: GPT-3's decontamination words (lower-cased, punctuation removed).
"""
