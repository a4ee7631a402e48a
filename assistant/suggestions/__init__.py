"""Help before the driver asks: friction rules over the journey, and cards quoting the corpus."""

from assistant.suggestions.cards import HelpCard, Suggester, card_id
from assistant.suggestions.friction import Friction, detect
from assistant.suggestions.rules import FrictionRules, load_rules

__all__ = ["Friction", "FrictionRules", "HelpCard", "Suggester", "card_id", "detect", "load_rules"]
