"""The package name our layers, models and losses are registered under.

`.keras` files store it with each class name ("sr_keras>MGBPGenerator"), so
saved models load only while it stays the same.
"""

PACKAGE = "sr_keras"
