"""Container side of inginious-agent-docker's grading images.

Everything here runs inside a grading (or student) container, with the
Python 3 and python3-msgpack of the image. See images/README.md.
"""
