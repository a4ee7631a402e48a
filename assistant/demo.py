"""The scripted scenarios of ``make demo``: journey-aware answers with citations and routes."""

from __future__ import annotations

from contextlib import suppress
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict
from rich.console import Console
from rich.markup import escape
from rich.rule import Rule

from assistant.errors import AssistantError
from assistant.pipeline import Assistant
from assistant.request import HelpRequest, JourneyContext


class Scenario(BaseModel):
    """One scripted driver contact."""

    model_config = ConfigDict(frozen=True)

    title: str
    message: str
    journey: JourneyContext | None = None
    pair: str | None = None


class Contact(BaseModel):
    """One background contact of the demo's traffic (recorded, not printed)."""

    model_config = ConfigDict(frozen=True)

    driver: str
    message: str
    journey: JourneyContext | None = None
    helpful: bool | None = None


def load_traffic() -> list[Contact]:
    """The demo's background contacts shipped with the package."""
    text = resources.files("assistant").joinpath("demo_traffic.yaml").read_text(encoding="utf-8")
    return [Contact.model_validate(item) for item in yaml.safe_load(text)]


def record_traffic(assistant: Assistant) -> int:
    """Answer the demo's background contacts and record the drivers' feedback in the assistant's
    store (nothing is printed); returns how many contacts were recorded."""
    contacts = load_traffic()
    store = assistant.store
    for contact in contacts:
        response = assistant.answer(HelpRequest(message=contact.message, journey=contact.journey, driver_id=contact.driver))
        if contact.helpful is not None and store is not None:
            with suppress(AssistantError):  # the record is still spooled (database busy): no feedback then
                store.add_feedback(response.conversation_id, helpful=contact.helpful)
    return len(contacts)


class CardScenario(BaseModel):
    """A journey shown for help cards (no question)."""

    model_config = ConfigDict(frozen=True)

    title: str
    journey: JourneyContext


def load_card_scenarios() -> list[CardScenario]:
    """The help-card journeys shipped with the package."""
    text = resources.files("assistant").joinpath("demo_cards.yaml").read_text(encoding="utf-8")
    return [CardScenario.model_validate(item) for item in yaml.safe_load(text)]


def run_cards(assistant: Assistant, console: Console) -> None:
    """Show the help cards of every card journey (none for the calm one)."""
    console.print(Rule("Help before the driver asks (Assistant.suggest)"))
    for scenario in load_card_scenarios():
        console.print(f"[bold]{escape(scenario.title)}[/]  [dim]{escape(_journey_line(scenario.journey))}[/]", highlight=False)
        cards = assistant.suggest(scenario.journey)
        if not cards:
            console.print("  no card: the journey shows no friction", highlight=False)
        for card in cards:
            source = f" ({card.citations[0].doc_id})" if card.citations else ""
            console.print(f"  [green]card[/] {escape(card.title)}{escape(source)}: why: {escape(card.why)}", highlight=False)
            console.print(f"    {escape(card.body.splitlines()[0][:160])}", highlight=False)


def load_scenarios() -> list[Scenario]:
    """The scenarios shipped with the package."""
    text = resources.files("assistant").joinpath("demo_scenarios.yaml").read_text(encoding="utf-8")
    return [Scenario.model_validate(item) for item in yaml.safe_load(text)]


def _journey_line(journey: JourneyContext | None) -> str:
    if journey is None:
        return "no journey context"
    data = journey.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    parts = [f"{k}={v}" for k, v in data.items() if k not in ("order", "events")]
    if journey.order:
        parts.append(f"order={journey.order.type or ''}{'+' + '+'.join(sorted(journey.order_flags)) if journey.order_flags else ''}")
    parts.extend(f"event={e.type.value}:{e.code or e.name}" for e in journey.events)
    return ", ".join(parts)


def run_demo(assistant: Assistant, console: Console) -> None:
    """Answer every scenario and print it."""
    from assistant.cli import print_response

    for number, scenario in enumerate(load_scenarios(), start=1):
        console.print(Rule(f"{number}. {escape(scenario.title)}"))
        if scenario.pair:
            console.print(f"[dim]journey-aware pair: {escape(scenario.pair)}[/]")
        console.print(f"[bold]Driver:[/] {escape(scenario.message)}", highlight=False)
        console.print(f"[dim]Journey: {escape(_journey_line(scenario.journey))}[/]", highlight=False)
        response = assistant.answer(HelpRequest(message=scenario.message, journey=scenario.journey))
        print_response(response, console)
