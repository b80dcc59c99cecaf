"""The ``art-denoise`` command line: it parses arguments and calls the library."""
