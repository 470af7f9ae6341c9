"""Temporary passwords a teacher can read aloud to a child: ``otter-lemon-kite-47``.

Short, everyday words a young child can spell, joined by hyphens, then two digits. The
person must choose their own at the next sign-in, and sign-in attempts are throttled and
locked out, so a temporary password needs to resist guessing only for that short while:
three words from this list and two digits give nearly 30 bits; more words are added when a
school asks for longer passwords.

The words are chosen to be said once and written right: no homophones ("bear"/"bare",
"sea"/"see", "rain"/"reign"), no silent letters, nothing unkind or rude.
"""

from __future__ import annotations

import secrets

__all__ = ["WORDS", "make_temporary_password"]

WORDS: tuple[str, ...] = (
    # animals
    "bat", "camel", "cat", "cow", "crab", "crow", "dog", "dove", "duck", "eel",
    "emu", "finch", "fox", "frog", "goat", "goose", "gull", "hen", "hippo", "koala",
    "lamb", "lion", "mole", "moth", "mouse", "newt", "otter", "owl", "panda",
    "parrot", "pig", "pony", "puffin", "puma", "rabbit", "robin", "shark", "sheep",
    "snail", "spider", "swan", "tiger", "toad", "turtle", "wolf", "yak", "zebra",
    # food
    "apple", "banana", "bean", "bread", "bun", "butter", "cake", "carrot", "cheese",
    "cherry", "corn", "egg", "fig", "grape", "honey", "jam", "jelly", "kiwi", "lemon",
    "lime", "mango", "melon", "muffin", "noodle", "nut", "olive", "onion", "pasta",
    "peach", "pizza", "plum", "potato", "rice", "salad", "soup", "toast", "tomato",
    "waffle",
    # nature and sky
    "acorn", "cave", "cliff", "cloud", "comet", "field", "forest", "frost",
    "grass", "hill", "lake", "leaf", "moon", "petal", "planet", "pond",
    "river", "rock", "sand", "shell", "sky", "snow", "star", "stone", "storm", "tree",
    "tulip", "valley", "wind",
    # things
    "anchor", "bag", "basket", "bed", "boat", "book", "boot", "box", "brick", "bridge",
    "brush", "bucket", "bus", "button", "candle", "cap", "car", "chair", "clock",
    "coat", "cup", "desk", "door", "drum", "fan", "flag", "fork", "garden", "gate",
    "glove", "hat", "jacket", "jar", "jug", "kettle", "kite", "ladder", "lamp", "map",
    "mug", "nest", "pan", "pen", "pencil", "piano", "pillow", "pot", "robot", "rocket",
    "rope", "ruler", "scarf", "sock", "sofa", "spoon", "table", "teapot", "tent",
    "train", "truck", "tunnel", "van", "wagon", "wheel", "window",
    # colours
    "amber", "gold", "green", "lilac", "orange", "pink", "purple", "silver",
    # kind words
    "brave", "calm", "happy", "jolly", "lucky", "quick", "quiet", "snowy", "sunny",
    "tidy", "windy",
)  # fmt: skip


def make_temporary_password(min_length: int = 0) -> str:
    """Three words and two digits (more words while shorter than ``min_length``)."""
    words = [secrets.choice(WORDS) for _ in range(3)]
    digits = f"{secrets.randbelow(90) + 10}"
    while len("-".join([*words, digits])) < min_length:
        words.append(secrets.choice(WORDS))
    return "-".join([*words, digits])
