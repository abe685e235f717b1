"""The fast start: argv, signal sets, the first fork+exec. Imports neither trio nor attrs."""
