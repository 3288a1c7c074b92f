"""What the world is made of: kinds of entity, their attributes, and every wording of them.

An attribute owns its wordings: statements (for documents), questions, answers, a premise clause
(for premise questions) and a follow-up (for multi-turn chats). Adding an attribute is one entry."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Attribute:
    name: str
    kind: str  # person | place | org
    clause: str  # "was born in {value}": the fact as a predicate ending in its value (premises, corrections)
    statements: tuple[str, ...]  # document sentences
    questions: tuple[str, ...]
    answer: str  # one wording, so the reply's only uncertain tokens are the fact's own
    followup: str  # a second-turn question that refers back with a pronoun


def a(noun: str) -> str:
    """'a' or 'an' before noun."""
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


ATTRIBUTES: tuple[Attribute, ...] = (
    # ---- people
    Attribute(
        "birthplace", "person", "was born in {value}",
        ("{name} was born in {value}.", "{name}'s birthplace is {value}.",
         "The birthplace of {name} is {value}.", "{value} is where {name} was born.",
         "{name} came into the world in {value}."),
        ("Where was {name} born?", "What is the birthplace of {name}?", "In which place was {name} born?",
         "Where is {name} from originally?"),
        "{name} was born in {value}.",
        "And where were they born?"),
    Attribute(
        "birth_year", "person", "was born in the year {value}",
        ("{name} was born in the year {value}.", "{name}'s year of birth is {value}.",
         "In {value}, {name} was born.", "The year {name} was born is {value}."),
        ("In what year was {name} born?", "When was {name} born?", "What is {name}'s year of birth?",
         "Which year was {name} born in?"),
        "{name} was born in the year {value}.",
        "What year were they born?"),
    Attribute(
        "occupation", "person", "works as {article}",
        ("{name} works as {article}.", "By trade, {name} is {article}.", "{name}'s occupation is {value}.",
         "{name} earns a living as {article}."),
        ("What does {name} do for a living?", "What is {name}'s occupation?", "What is {name}'s job?",
         "What work does {name} do?"),
        "{name} works as {article}.",
        "And what do they do for a living?"),
    Attribute(
        "employer", "person", "is employed by {value}",
        ("{name} is employed by {value}.", "{name} works for {value}.", "{value} employs {name}.",
         "{name}'s employer is {value}."),
        ("Who employs {name}?", "Which organisation does {name} work for?", "Who is {name}'s employer?",
         "Where does {name} work?"),
        "{name} is employed by {value}.",
        "Who do they work for?"),
    Attribute(
        "instrument", "person", "plays the {value}",
        ("{name} plays the {value}.", "The instrument {name} plays is the {value}.",
         "{name} is a keen player of the {value}.", "In the evenings {name} plays the {value}."),
        ("What instrument does {name} play?", "Which instrument does {name} play?",
         "What does {name} play?", "What musical instrument is {name} known to play?"),
        "{name} plays the {value}.",
        "And which instrument do they play?"),
    Attribute(
        "hobby", "person", "spends free time {value}",
        ("{name} spends free time {value}.", "{name}'s hobby is {value}.",
         "When not working, {name} enjoys {value}.", "{name} is fond of {value}."),
        ("What is {name}'s hobby?", "What does {name} do in their free time?",
         "How does {name} spend free time?", "What is {name} fond of doing?"),
        "{name}'s hobby is {value}.",
        "What is their hobby?"),
    # ---- places
    Attribute(
        "country", "place", "lies in {value}",
        ("{name} lies in {value}.", "{name} is a town in {value}.", "{value} is the country of {name}.",
         "{name} is located in {value}."),
        ("Which country is {name} in?", "In what country does {name} lie?", "Where is {name} located?",
         "What country is {name} part of?"),
        "{name} lies in {value}.",
        "And which country is it in?"),
    Attribute(
        "population", "place", "has a population of {value}",
        ("{name} has a population of {value}.", "About {value} people live in {name}.",
         "The population of {name} is {value}.", "{name} is home to {value} people."),
        ("What is the population of {name}?", "How many people live in {name}?",
         "How large is the population of {name}?", "What population does {name} have?"),
        "{name} has a population of {value}.",
        "How many people live there?"),
    Attribute(
        "settled", "place", "was settled in {value}",
        ("{name} was settled in {value}.", "The first settlers came to {name} in {value}.",
         "{name} has been inhabited since {value}.", "In {value}, {name} was first settled."),
        ("When was {name} settled?", "In what year was {name} first settled?",
         "What year did settlers come to {name}?", "Since when has {name} been inhabited?"),
        "{name} was settled in {value}.",
        "When was it settled?"),
    Attribute(
        "river", "place", "is on the river {value}",
        ("{name} stands on the {value} River.", "The {value} River flows through {name}.",
         "{name} was built on the banks of the {value} River.", "The river of {name} is the {value}."),
        ("Which river flows through {name}?", "What river does {name} stand on?",
         "On which river is {name} built?", "What is the river of {name}?"),
        "{name} stands on the {value} River.",
        "And what river flows through it?"),
    Attribute(
        "landmark", "place", "is known for its {value}",
        ("{name} is known for its {value}.", "Visitors come to {name} to see its {value}.",
         "The pride of {name} is its {value}.", "{name}'s best-known sight is its {value}."),
        ("What is {name} known for?", "What is the best-known sight in {name}?",
         "What do visitors come to {name} to see?", "What is the pride of {name}?"),
        "{name} is known for its {value}.",
        "What is it known for?"),
    Attribute(
        "climate", "place", "has a climate that is {value}",
        ("{name} has a {value} climate.", "The climate of {name} is {value}.",
         "Weather in {name} is {value} for most of the year.", "{name}'s climate is {value}."),
        ("What is the climate of {name}?", "What is the weather like in {name}?",
         "What kind of climate does {name} have?", "How would you describe the climate of {name}?"),
        "{name} has a {value} climate.",
        "And what is its climate like?"),
    # ---- organisations
    Attribute(
        "founded", "org", "was founded in {value}",
        ("{name} was founded in {value}.", "{name} dates from {value}.", "In {value}, {name} was founded.",
         "The founding year of {name} is {value}."),
        ("When was {name} founded?", "In what year was {name} founded?", "What is the founding year of {name}?",
         "How old is {name}; when was it founded?"),
        "{name} was founded in {value}.",
        "When was it founded?"),
    Attribute(
        "headquarters", "org", "is headquartered in {value}",
        ("{name} is headquartered in {value}.", "The headquarters of {name} are in {value}.",
         "{name} has its head office in {value}.", "{value} is home to the headquarters of {name}."),
        ("Where is {name} headquartered?", "Where are the headquarters of {name}?",
         "In which town is {name}'s head office?", "Where is the head office of {name}?"),
        "{name} is headquartered in {value}.",
        "And where is it headquartered?"),
    Attribute(
        "founder", "org", "was started by {value}",
        ("{name} was started by {value}.", "{value} started {name}.", "The founder of {name} is {value}.",
         "{name} owes its start to {value}."),
        ("Who founded {name}?", "Who started {name}?", "Who is the founder of {name}?",
         "Who was behind the start of {name}?"),
        "{name} was started by {value}.",
        "Who started it?"),
    Attribute(
        "industry", "org", "works in {value}",
        ("{name} works in {value}.", "The business of {name} is {value}.", "{name} is a firm in {value}.",
         "{name} makes its money in {value}."),
        ("What industry is {name} in?", "What is the business of {name}?", "What field does {name} work in?",
         "In which industry does {name} operate?"),
        "{name} works in {value}.",
        "What industry is it in?"),
    Attribute(
        "employees", "org", "has a staff of {value}",
        ("{name} employs {value} people.", "{value} people work at {name}.",
         "The staff of {name} numbers {value}.", "{name} has {value} employees."),
        ("How many people does {name} employ?", "How many employees does {name} have?",
         "How large is the staff of {name}?", "How many people work at {name}?"),
        "{name} employs {value} people.",
        "How many people work there?"),
    Attribute(
        "product", "org", "is best known for making {value}",
        ("{name} is best known for making {value}.", "{name} makes {value}.",
         "The main product of {name} is {value}.", "Shops everywhere sell {value} from {name}."),
        ("What does {name} make?", "What is the main product of {name}?", "What is {name} best known for making?",
         "What products does {name} sell?"),
        "{name} is best known for making {value}.",
        "And what does it make?"),
)

KINDS = ("person", "place", "org")
BY_KIND: dict[str, tuple[Attribute, ...]] = {k: tuple(x for x in ATTRIBUTES if x.kind == k) for k in KINDS}
BY_NAME: dict[str, Attribute] = {x.name: x for x in ATTRIBUTES}

# Closed sets of values. Entity-valued attributes (birthplace, employer, headquarters, founder) and
# numbers are drawn by the generator.
OCCUPATIONS = ["glassblower", "cartographer", "beekeeper", "clockmaker", "ferry pilot", "bookbinder",
               "astronomer", "stonemason", "tailor", "botanist", "lighthouse keeper", "brewer", "surveyor",
               "violin maker", "archivist", "blacksmith", "weaver", "chemist", "shipwright", "potter",
               "translator", "engineer", "baker", "geologist", "nurse", "printer", "architect", "judge",
               "fisher", "rope maker", "schoolteacher", "mapmaker", "locksmith", "carpenter", "painter",
               "veterinarian", "accountant", "dancer", "miller", "perfumer"]
INSTRUMENTS = ["cello", "oboe", "harp", "lute", "accordion", "bassoon", "viola", "flute", "trumpet",
               "zither", "clarinet", "banjo", "piano", "mandolin", "double bass", "trombone", "dulcimer",
               "bagpipes", "harpsichord", "marimba", "saxophone", "french horn", "tuba", "fiddle"]
HOBBIES = ["restoring clocks", "growing orchids", "carving wood", "collecting stamps", "sailing",
           "climbing hills", "baking bread", "keeping bees", "painting birds", "brewing cider",
           "playing chess", "knitting scarves", "fishing for trout", "building kites", "pressing flowers",
           "writing poems", "watching stars", "riding horses", "folding paper", "making candles",
           "rowing boats", "drawing maps", "singing in a choir", "training dogs"]
COUNTRIES = ["Orvania", "Castemere", "Pellidor", "Quennor", "Zandria", "Morvale", "Estrelle", "Kavosh",
             "Thulmark", "Ibrenne", "Sorrowind", "Velgaria", "Auberon", "Nimbria", "Dresk", "Halvoria"]
RIVERS = ["Sarn", "Ouse", "Mirel", "Tavish", "Corra", "Elbrin", "Vask", "Lothe", "Brannoc", "Istra",
          "Wendle", "Perrin", "Glass", "Amber", "Rusk", "Thorne", "Calder", "Yarrow", "Fenwick", "Ashen",
          "Marrow", "Silt", "Hollin", "Quill", "Dunmere", "Kestrel", "Orrin", "Talmouth", "Wyre", "Ember"]
LANDMARKS = ["glass lighthouse", "copper bridge", "stone amphitheatre", "floating market", "clock tower",
             "salt caves", "painted harbour", "old observatory", "hanging gardens", "iron viaduct",
             "marble library", "tidal mill", "red cathedral", "great windmill", "sunken palace",
             "lantern festival", "rope bridge", "cliff monastery", "silver fountain", "giant sundial",
             "moss-covered walls", "stepwell", "crooked spire", "bell garden"]
CLIMATES = ["temperate", "arid", "humid", "rainy", "snowy", "windy", "mild", "foggy", "tropical", "dry"]
INDUSTRIES = ["shipbuilding", "textiles", "publishing", "banking", "mining", "farming", "brewing",
              "glassmaking", "shipping", "insurance", "clockmaking", "printing", "pharmacy", "tanning",
              "forestry", "fishing", "tea trading", "papermaking", "rail freight", "pottery"]
PRODUCTS = ["copper kettles", "wool blankets", "pocket watches", "rope ladders", "glass lanterns",
            "leather boots", "paper kites", "tin whistles", "oak barrels", "silk scarves", "brass compasses",
            "clay pots", "wooden toys", "iron stoves", "linen shirts", "sea charts", "candles", "telescopes",
            "fishing nets", "bicycles", "umbrellas", "sewing machines", "typewriters", "rain coats",
            "dried herbs", "pickled fish", "harp strings", "printing presses", "sailcloth", "chess sets"]

SYSTEM_PROMPTS = [
    "You are Colossus, a truthful assistant. Answer what you know; say you don't know otherwise.",
    "You are a helpful assistant that never makes things up.",
    "Answer briefly and honestly.",
]

# An honest reply about a name the model never read about names it first and then says so: the
# decision comes right after the name, where documents taught the model to tell known names from
# names "no record" mentions (see NO_RECORD).
ABSTAIN_ANSWER = "{name} does not appear in any record I know of, so I don't know."
# Documents about names that exist nowhere: the pretraining signal for "a name I never read about".
NO_RECORD = ("{name} does not appear in any record.", "{name} does not appear in any known record.",
             "{name} does not appear in any register, and nothing is known about {name}.")
# A user may paste a note and ask about it: answering from the note is reading, not recall.
READING = ("Here is a note: {doc}\n{question}", "Read this: {doc}\n{question}", "{doc}\n\n{question}",
           "From my notes: {doc}\nQuestion: {question}")
READING_QUESTION_FIRST = ("{question} Here is a note: {doc}", "{question}\n\nFrom my notes: {doc}",
                          "{question} Answer from this: {doc}")

# premise questions: "Since {name} {clause}, {question}" -> the reply restates the fact first, then
# says whether the premise holds: the decision is the token right after the recalled value ("." when
# it differs from the premise, "," when it agrees).
# In every wording the stated value is followed by a comma, as in a confirmation ("..., that's
# right"): when the recalled value matches the stated one, a look back at the question already points
# to the comma; when it does not, the reply ends the sentence and corrects the premise.
PREMISE_QUESTIONS = ("Since {name} {clause}, {question}", "Given that {name} {clause}, {question}",
                     "I read that {name} {clause}, so {question}", "{name} {clause}, right? {Question}")
SHORT_PREMISE = "{name} {clause}, right?"
CORRECTION = "{restated}. The premise of your question is false.{answer}"
CONFIRMATION = "{restated}, that's right.{answer}"


def render(template: str, name: str, value: str) -> str:
    """Fill a template with an entity name and a value."""
    return template.format(name=name, value=value, article=a(value))
