"""Reading documents into memory states: where states live (cache), how a read streams,
checkpoints and resumes (session), and what a read will cost before it runs (plan).

Library code: raises CometError subclasses and reports through callbacks; never prints.
"""
