"""Which stores a pass lists: nearest to the home store, else the chosen ones, else the first."""

from __future__ import annotations

from walletsvc.domain.store import Store, choose_pass_locations


def store(store_id: str, name: str, latitude: float, longitude: float) -> Store:
    return Store(store_id, "coffee", name, latitude, longitude, 100.0)


BERLIN = store("ber-mitte", "Berlin Mitte", 52.5200, 13.4050)
BERLIN_WEST = store("ber-west", "Berlin Charlottenburg", 52.5160, 13.3040)
POTSDAM = store("potsdam", "Potsdam", 52.3906, 13.0645)
LEIPZIG = store("leipzig", "Leipzig", 51.3397, 12.3731)
HAMBURG = store("hamburg", "Hamburg", 53.5511, 9.9937)
COLOGNE = store("koeln", "Köln", 50.9375, 6.9603)
MUNICH = store("muenchen", "München", 48.1351, 11.5820)
ALL = (MUNICH, COLOGNE, HAMBURG, LEIPZIG, POTSDAM, BERLIN_WEST, BERLIN)


def ids(stores: tuple[Store, ...]) -> list[str]:
    return [s.id for s in stores]


def test_home_store_comes_first_then_the_nearest_ones() -> None:
    chosen = choose_pass_locations(ALL, "ber-mitte", ())
    assert ids(chosen) == [
        "ber-mitte",
        "ber-west",
        "potsdam",
        "leipzig",
        "hamburg",
        "koeln",
        "muenchen",
    ]


def test_from_munich_leipzig_is_nearer_than_hamburg() -> None:
    chosen = choose_pass_locations(ALL, "muenchen", (), limit=3)
    assert ids(chosen) == ["muenchen", "leipzig", "koeln"]


def test_the_home_store_wins_over_the_programs_choice() -> None:
    chosen = choose_pass_locations(ALL, "hamburg", ("koeln",), limit=2)
    assert ids(chosen) == ["hamburg", "potsdam"]  # 243 km; Berlin is 250 km


def test_without_a_home_store_the_programs_choice_keeps_its_order() -> None:
    chosen = choose_pass_locations(ALL, None, ("koeln", "gone", "hamburg", "koeln"))
    assert ids(chosen) == ["koeln", "hamburg"]


def test_an_unknown_home_store_falls_back_to_the_programs_choice() -> None:
    assert ids(choose_pass_locations(ALL, "closed-store", ("potsdam",))) == ["potsdam"]


def test_without_home_or_choice_the_first_stores_by_id() -> None:
    assert ids(choose_pass_locations(ALL, None, (), limit=3)) == [
        "ber-mitte",
        "ber-west",
        "hamburg",
    ]


def test_never_more_than_ten_locations() -> None:
    many = tuple(store(f"s{n:02}", f"Store {n}", 52.0 + n / 100, 13.0) for n in range(25))
    assert len(choose_pass_locations(many, "s12", ())) == 10
    assert len(choose_pass_locations(many, None, [s.id for s in many])) == 10
    assert len(choose_pass_locations(many, None, ())) == 10


def test_equally_near_stores_are_ordered_by_id() -> None:
    twin_b = store("b", "Twin B", 52.0, 13.0)
    twin_a = store("a", "Twin A", 52.0, 13.0)
    home = store("home", "Home", 52.1, 13.0)
    assert ids(choose_pass_locations((twin_b, home, twin_a), "home", ())) == ["home", "a", "b"]


def test_no_stores_no_locations() -> None:
    assert choose_pass_locations((), "ber-mitte", ("ber-mitte",)) == ()
