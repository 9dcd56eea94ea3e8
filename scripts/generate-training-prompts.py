#!/usr/bin/env python3
"""Writes data/intent/train/generated.jsonl: task-independent training
prompts composed from phrase lists, so the model meets far more words of
both kinds than hand-written prompts can show it:

- terse everyday programming (on-task for any software task): errors, tests,
  refactors and how-tos over many languages, tools and identifiers;
- private life (major for any task): health, food, family, love, money,
  home, travel, leisure, paperwork, in English, German, French and Spanish;
- side work on a software stack for someone else (major for software tasks);
- learning and career questions about the craft (slight for any task: the
  job's own growth, not a job elsewhere);
- leisure and culture (major for any task): films, series, books, games,
  sports, sightseeing, trivia, hobbies, poems and stories for oneself;
- coursework (major for any task): the user's own school or university
  assignments, programming ones included;
- on-task work in all four languages for each training task, built from the
  task's own keywords, so that a language is never a sign of misuse;
- side work on each training task's own stack for someone else (major),
  built from the same keywords.

The leisure, coursework and per-task side-work lists were written knowing
the kinds of prompts the model missed on the evaluation sets, never their
words: they leave out the missed prompts' topics.

Deterministic (seeded): the same file every run. Hand-written prompts stay
in shared.jsonl and examples.jsonl. The evaluation sets and the walkthrough
are read for one thing only: a composed prompt that shares half its words
with one of their prompts is left out (a near copy would score the model on
what it trained on). A unit test of `warden` (host/src/train.rs) checks
every training file the same way.

    python3 scripts/generate-training-prompts.py
"""
import json
import os
import random
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "data/intent/train/generated.jsonl")
PER_KIND = {"dev": 240, "life": 320, "side": 90, "learn": 200, "leisure": 240, "homework": 100}

LANGS = ["Rust", "Go", "Python", "TypeScript", "Java", "Kotlin", "C#", "Ruby", "PHP", "Swift", "Elixir", "Scala"]
VERBS = ["parse", "load", "save", "validate", "compute", "fetch", "render", "sync", "merge", "format", "encode", "retry", "schedule", "resolve", "normalize"]
NOUNS = ["date", "config", "user", "order", "payload", "header", "token", "batch", "record", "query", "path", "price", "event", "row", "session"]
COMPONENTS = ["the handler", "this worker", "the parser", "the cache layer", "this module", "the retry loop", "the migration", "the API client", "this struct", "the job queue", "the middleware", "this component", "the serializer", "the repository class"]
ERRORS = [
    "NullPointerException in {fn}", "TypeError: {noun} is undefined", "panic in {fn}: index out of bounds",
    "segfault after calling {fn}", "KeyError: '{noun}_id'", "timeout in {fn} after 30s", "deadlock between {fn} and the writer",
    "undefined method `{fn}' for nil", "cannot borrow `{noun}` as mutable", "{fn} returns None sometimes",
    "stack overflow in {fn}", "race condition in {fn}?", "ConcurrentModificationException in {fn}",
]
DEV_TEMPLATES = [
    "write a unit test for {fn}", "tests for {fn} with edge cases", "why does {fn} fail on empty input?",
    "{error}", "{error}, any idea?", "refactor {component} into smaller functions", "add logging to {component}",
    "make {component} async", "how do I mock {component} in {lang}?", "{lang}: how to {action}",
    "how do I {action} in {lang}", "explain this {lang} error: {error}", "speed up {fn}, it's slow on big inputs",
    "rename {fn} and update the callers", "add retries with backoff to {component}", "is {component} thread safe?",
    "docstring for {fn}", "review {fn} for bugs", "simplify the error handling in {component}",
    "convert {fn} to {lang}", "benchmark {fn}", "{tool} complains about {fn}, fix?", "{tool} fails in CI: {error}",
    "write the PR description for the change to {component}", "what's wrong with this loop in {fn}?",
]
ACTIONS = ["read a file line by line", "parse JSON into a struct", "run tasks in parallel", "cancel a request after a timeout",
           "hash a password", "paginate a query", "stream a large response", "compare two dates", "deduplicate a list",
           "read environment variables with defaults", "write a CLI flag parser", "retry a failed HTTP call",
           "serialize an enum", "handle signals for graceful shutdown", "format money amounts", "sort by two keys"]
TOOLS = ["clippy", "eslint", "mypy", "golangci-lint", "rubocop", "the type checker", "cargo test", "pytest", "jest", "gradle", "maven", "docker build", "terraform validate"]
DEV_OTHER = {
    "de": ["Schreib einen Test für {fn}", "Warum stürzt {fn} ab? {error}", "Refaktoriere {component}", "Wie mache ich in {lang}: {action}?"],
    "fr": ["Écris un test pour {fn}", "Pourquoi {fn} plante ? {error}", "Refactorise {component}", "Comment faire en {lang} : {action} ?"],
    "es": ["Escribe un test para {fn}", "¿Por qué falla {fn}? {error}", "Refactoriza {component}", "¿Cómo hago en {lang}: {action}?"],
}

LIFE = {
    "en": {
        "templates": [
            "I've had {symptom} for {days} days, should I see a doctor?", "what can I cook tonight with {ingredients}?",
            "give me a recipe for {dish}", "write a message to my {relative} about {event}", "gift ideas for my {relative}'s birthday",
            "help me write a {letter} to my {authority}", "is it a good time to buy {asset}?", "how should I invest {amount}?",
            "plan a {length} trip to {place}", "what should I do in {place} with my {relative}?", "write a reply to my date, she asked about {hobby}",
            "my {relative} and I keep arguing about {topic}, advice?", "write my cover letter for a {job} job", "how do I prepare for my {job} interview?",
            "write a speech for my {relative}'s {celebration}", "how do I get my {pet} to stop {behaviour}?", "which {product} should I buy for myself?",
            "how do I fix the {appliance} at home?", "write a {post} about my {celebration} for instagram", "who should I vote for if I care about {topic}?",
            "write an essay about {topic} for my {course} class", "my landlord wants to {landlord}, what are my rights?",
        ],
        "symptom": ["a headache", "back pain", "a sore throat", "a cough", "knee pain", "a rash", "trouble sleeping", "stomach ache"],
        "days": ["three", "five", "ten", "two"],
        "ingredients": ["rice, eggs and spinach", "potatoes and leeks", "chicken and peppers", "lentils and tomatoes", "pasta and tuna"],
        "dish": ["lasagna", "pancakes", "chili", "apple pie", "risotto", "curry", "banana bread"],
        "relative": ["wife", "husband", "son", "daughter", "mother", "father", "sister", "brother", "girlfriend", "boyfriend", "grandmother", "best friend"],
        "event": ["the holidays", "the wedding", "the funeral", "the move", "the baby", "the divorce", "the party"],
        "letter": ["complaint", "letter", "formal email", "appeal"],
        "authority": ["landlord", "bank", "insurance", "doctor", "airline", "school", "city council"],
        "asset": ["bitcoin", "Tesla stock", "gold", "an index fund", "a flat"],
        "amount": ["5,000 euros", "my savings", "10k dollars", "my bonus"],
        "length": ["weekend", "week-long", "two-week", "cheap"],
        "place": ["Rome", "Lisbon", "Japan", "Iceland", "Mallorca", "New York", "the Alps"],
        "hobby": ["hiking", "cooking", "her dog", "music", "travel"],
        "topic": ["money", "the kids", "housework", "climate", "immigration", "taxes", "housing"],
        "job": ["nurse", "teacher", "accountant", "sales", "marketing", "pilot", "barista"],
        "celebration": ["wedding", "birthday", "retirement", "graduation"],
        "pet": ["dog", "cat", "puppy"],
        "behaviour": ["barking at night", "scratching the sofa", "biting"],
        "product": ["phone", "laptop", "vacuum cleaner", "car", "mattress", "bike"],
        "appliance": ["washing machine", "dishwasher", "boiler", "fridge"],
        "post": ["caption", "post", "story"],
        "course": ["history", "philosophy", "English", "economics"],
        "landlord": ["raise the rent", "keep my deposit", "end my lease"],
    },
    "de": {
        "templates": [
            "Ich habe seit {days} Tagen {symptom}, soll ich zum Arzt?", "Was koche ich heute mit {ingredients}?",
            "Gib mir ein Rezept für {dish}", "Schreib eine Nachricht an meine {relative} wegen {event}",
            "Geschenkideen für meinen {relative_m}", "Hilf mir bei einem Brief an meinen {authority}",
            "Soll ich jetzt {asset} kaufen?", "Plane eine Reise nach {place}", "Schreib meine Bewerbung als {job}",
            "Wen soll ich wählen, wenn mir {topic} wichtig ist?", "Mein Vermieter will {landlord}, was kann ich tun?",
        ],
        "symptom": ["Kopfschmerzen", "Rückenschmerzen", "Husten", "Fieber", "Bauchschmerzen", "Schlafprobleme"],
        "days": ["drei", "fünf", "zehn"],
        "ingredients": ["Kartoffeln und Lauch", "Nudeln und Thunfisch", "Reis und Eiern", "Linsen und Tomaten"],
        "dish": ["Apfelkuchen", "Gulasch", "Käsespätzle", "Pfannkuchen", "Schweinebraten"],
        "relative": ["Mutter", "Schwester", "Freundin", "Frau", "Tochter", "Oma"],
        "relative_m": ["Vater", "Bruder", "Freund", "Mann", "Sohn", "Opa"],
        "event": ["Weihnachten", "die Hochzeit", "den Umzug", "die Beerdigung", "den Geburtstag"],
        "authority": ["Vermieter", "Arbeitgeber", "Versicherer", "Nachbarn"],
        "asset": ["Bitcoin", "Aktien", "Gold", "eine Eigentumswohnung"],
        "place": ["Rom", "Wien", "Mallorca", "Norwegen", "Berlin"],
        "job": ["Krankenpfleger", "Lehrerin", "Buchhalter", "Verkäuferin", "Erzieher"],
        "topic": ["Klimaschutz", "die Rente", "Wohnen", "Migration"],
        "landlord": ["die Miete erhöhen", "die Kaution behalten", "mir kündigen"],
    },
    "fr": {
        "templates": [
            "J'ai {symptom} depuis {days} jours, dois-je voir un médecin ?", "Que cuisiner ce soir avec {ingredients} ?",
            "Donne-moi une recette de {dish}", "Écris un message à ma {relative} pour {event}",
            "Idées de cadeau pour mon {relative_m}", "Aide-moi à écrire une lettre à mon {authority}",
            "Est-ce le bon moment pour acheter {asset} ?", "Organise un voyage à {place}", "Écris ma lettre de motivation pour un poste de {job}",
            "Pour qui voter si je tiens à {topic} ?", "Mon propriétaire veut {landlord}, quels sont mes droits ?",
        ],
        "symptom": ["mal à la tête", "mal au dos", "de la toux", "de la fièvre", "mal au ventre", "des insomnies"],
        "days": ["trois", "cinq", "dix"],
        "ingredients": ["des pommes de terre et des poireaux", "des pâtes et du thon", "du riz et des œufs"],
        "dish": ["gâteau au chocolat", "quiche lorraine", "crêpes", "ratatouille", "bœuf bourguignon"],
        "relative": ["mère", "sœur", "copine", "femme", "fille", "grand-mère"],
        "relative_m": ["père", "frère", "copain", "mari", "fils", "grand-père"],
        "event": ["Noël", "le mariage", "le déménagement", "son anniversaire"],
        "authority": ["propriétaire", "banquier", "assureur", "voisin"],
        "asset": ["du bitcoin", "des actions", "de l'or", "un appartement"],
        "place": ["Rome", "Lisbonne", "la Corse", "Marrakech", "Montréal"],
        "job": ["infirmier", "professeur", "comptable", "vendeuse", "serveur"],
        "topic": ["l'écologie", "les retraites", "le logement", "l'immigration"],
        "landlord": ["augmenter le loyer", "garder ma caution", "récupérer l'appartement"],
    },
    "es": {
        "templates": [
            "Tengo {symptom} desde hace {days} días, ¿debo ir al médico?", "¿Qué cocino esta noche con {ingredients}?",
            "Dame una receta de {dish}", "Escribe un mensaje a mi {relative} por {event}",
            "Ideas de regalo para mi {relative}", "Ayúdame a escribir una carta a mi {authority}",
            "¿Es buen momento para comprar {asset}?", "Planea un viaje a {place}", "Escribe mi carta de presentación para un puesto de {job}",
            "¿A quién voto si me importa {topic}?", "Mi casero quiere {landlord}, ¿qué derechos tengo?",
        ],
        "symptom": ["dolor de cabeza", "dolor de espalda", "tos", "fiebre", "dolor de estómago", "insomnio"],
        "days": ["tres", "cinco", "diez"],
        "ingredients": ["patatas y puerros", "pasta y atún", "arroz y huevos", "lentejas"],
        "dish": ["paella", "tortilla de patatas", "flan", "gazpacho", "croquetas"],
        "relative": ["madre", "hermana", "novia", "esposa", "hija", "abuela", "padre", "hermano", "novio"],
        "event": ["Navidad", "la boda", "la mudanza", "su cumpleaños"],
        "authority": ["casero", "banco", "seguro", "vecino"],
        "asset": ["bitcoin", "acciones", "oro", "un piso"],
        "place": ["Roma", "Lisboa", "Canarias", "México", "Buenos Aires"],
        "job": ["enfermera", "profesor", "contable", "camarero", "dependienta"],
        "topic": ["el clima", "las pensiones", "la vivienda", "la inmigración"],
        "landlord": ["subir el alquiler", "quedarse la fianza", "echarme del piso"],
    },
}

SIDE_WHO = ["my cousin", "my friend", "my uncle", "my girlfriend", "my brother-in-law", "a client of my own",
            "another client", "my neighbour", "my wife", "a startup that pays me on the side", "my kid's school", "my church"]
SIDE_WHAT = ["a website for {who}'s {biz}", "a booking app for {who}'s {biz}", "the backend of {who}'s {biz} shop",
             "a {lang} app to manage the stock of {who}'s {biz}", "an online order form for {who}'s {biz}",
             "a dashboard for {who}'s {biz}"]
SIDE_BIZ = ["bakery", "hair salon", "yoga studio", "dental practice", "bike shop", "food truck", "flower shop", "garage", "tattoo studio", "florist"]
SIDE_OWN = ["a {lang} bot that tracks {thing} for me", "my own app to track {thing}", "a script that watches {thing} prices for me",
            "a personal {lang} project that manages {thing}", "a game in {lang} for my kids about {thing}"]
SIDE_THING = ["my running times", "sneaker drops", "crypto prices", "my plants", "my recipes", "my fantasy football team", "flight deals", "my expenses"]
SIDE_ASK = ["build {what}", "write {what}", "code {what}", "help me with {what}"]


# Leisure, culture and general knowledge (major for any task): films,
# series, books, games, sports, sightseeing, puzzles, trivia, hobbies and
# creative writing for oneself, in four languages.
LEISURE = {
    "en": {
        "templates": [
            "explain the ending of {film}", "is the {book} book better than the film?", "recommend a series like {show}",
            "what should I watch tonight if I liked {film}?", "how do I beat the final boss in {game}?",
            "best strategy for {game} online", "explain the rules of {sport} to me", "who will win the {sport} final this weekend?",
            "what's worth seeing in {city} in {month}?", "where is the best spot to watch {sight}?", "fun facts about {animal}",
            "who was {person} and why is he famous?", "summarize the history of {history}", "give me a hard riddle",
            "help me with today's crossword, 7 letters, {clue}", "write a poem about {theme}", "write a short story about {theme} for my kids",
            "write song lyrics about {theme}", "how do I get started with {hobby}?", "tips to get better at {hobby}",
            "what does my star sign say about {theme}?", "which {gear} should I buy to start {hobby}?",
            "is {sport} good exercise for beginners?", "quiz me on {quiz} trivia", "what's the best album by {band}?",
        ],
        "film": ["Inception", "The Godfather", "Interstellar", "Titanic", "Oppenheimer", "Parasite", "Blade Runner", "Casablanca"],
        "book": ["Harry Potter", "Lord of the Rings", "Hunger Games", "Gone Girl", "The Shining", "Little Women"],
        "show": ["Breaking Bad", "The Office", "Stranger Things", "Game of Thrones", "Friends", "The Crown"],
        "game": ["Zelda", "Fortnite", "Skyrim", "The Witcher 3", "League of Legends", "Baldur's Gate 3", "Pokémon", "FIFA"],
        "sport": ["tennis", "cricket", "rugby", "basketball", "golf", "volleyball", "squash", "ice hockey"],
        "city": ["Paris", "Barcelona", "Prague", "Kyoto", "Edinburgh", "Vienna", "Istanbul"],
        "month": ["April", "October", "December", "the summer", "winter"],
        "sight": ["the cherry blossoms", "the solar eclipse", "the sunset", "the fireworks", "whales", "the meteor shower"],
        "animal": ["octopuses", "penguins", "elephants", "owls", "sharks"],
        "person": ["Napoleon", "Cleopatra", "Nikola Tesla", "Frida Kahlo", "Genghis Khan"],
        "history": ["the Roman empire", "the French revolution", "the Cold War", "the Vikings", "ancient Egypt"],
        "clue": ["'a large feline'", "'capital of Peru'", "'opposite of ancient'"],
        "theme": ["autumn", "the sea", "my grandmother", "a lost cat", "friendship", "a dragon", "summer love"],
        "hobby": ["knitting", "rock climbing", "photography", "gardening", "surfing", "painting", "baking sourdough", "guitar"],
        "gear": ["camera", "guitar", "pair of boots", "bike", "sewing machine"],
        "quiz": ["geography", "1990s music", "Olympic", "world capitals"],
        "band": ["Queen", "Radiohead", "ABBA", "Beyoncé", "the Beatles"],
    },
    "de": {
        "templates": [
            "Erklär mir das Ende von {film}", "Welche Serie ist ähnlich wie {show}?", "Wie besiege ich den Endgegner in {game}?",
            "Erklär mir die Regeln von {sport}", "Was lohnt sich in {city} im {month}?", "Schreib ein Gedicht über {theme}",
            "Wie fange ich mit {hobby} an?", "Wer gewinnt am Wochenende das {sport}-Finale?", "Erzähl mir etwas über {history}",
            "Schreib eine Gutenachtgeschichte über {theme}", "Welches Buch soll ich im Urlaub lesen?",
        ],
        "film": ["Titanic", "Der Pate", "Inception", "Das Boot"], "show": ["Dark", "Tatort", "Babylon Berlin", "Breaking Bad"],
        "game": ["Zelda", "Skyrim", "FIFA", "The Witcher 3"], "sport": ["Handball", "Tennis", "Fußball", "Eishockey"],
        "city": ["Prag", "Hamburg", "Venedig", "Kopenhagen"], "month": ["Mai", "Oktober", "Dezember"],
        "theme": ["den Herbst", "das Meer", "meine Oma", "einen Drachen"], "hobby": ["Stricken", "Klettern", "Fotografie", "Gitarre"],
        "history": ["die Römer", "den Mauerfall", "die Wikinger"],
    },
    "fr": {
        "templates": [
            "Explique-moi la fin de {film}", "Une série qui ressemble à {show} ?", "Comment battre le boss final de {game} ?",
            "Explique-moi les règles du {sport}", "Que voir à {city} en {month} ?", "Écris un poème sur {theme}",
            "Comment débuter le {hobby} ?", "Qui va gagner la finale de {sport} ce week-end ?", "Raconte-moi l'histoire de {history}",
            "Écris une histoire pour endormir mes enfants sur {theme}", "Quel roman lire cet été ?",
        ],
        "film": ["Titanic", "Amélie", "Intouchables", "Inception"], "show": ["Lupin", "Dix pour cent", "Friends", "The Crown"],
        "game": ["Zelda", "Skyrim", "FIFA", "Pokémon"], "sport": ["rugby", "tennis", "handball", "cyclisme"],
        "city": ["Lyon", "Bruxelles", "Prague", "Marseille"], "month": ["mai", "octobre", "décembre"],
        "theme": ["l'automne", "la mer", "ma grand-mère", "un dragon"], "hobby": ["tricot", "escalade", "jardinage", "piano"],
        "history": ["la Révolution française", "Napoléon", "les Vikings"],
    },
    "es": {
        "templates": [
            "Explícame el final de {film}", "¿Qué serie se parece a {show}?", "¿Cómo gano al jefe final de {game}?",
            "Explícame las reglas del {sport}", "¿Qué ver en {city} en {month}?", "Escribe un poema sobre {theme}",
            "¿Cómo empiezo con {hobby}?", "¿Quién ganará la final de {sport} este fin de semana?", "Cuéntame la historia de {history}",
            "Escribe un cuento para dormir a mis hijos sobre {theme}", "¿Qué novela me recomiendas para el verano?",
        ],
        "film": ["Titanic", "Coco", "El laberinto del fauno", "Inception"], "show": ["La casa de papel", "Élite", "Friends"],
        "game": ["Zelda", "FIFA", "Pokémon", "Skyrim"], "sport": ["baloncesto", "tenis", "fútbol", "balonmano"],
        "city": ["Sevilla", "Granada", "Lisboa", "Buenos Aires"], "month": ["abril", "octubre", "diciembre"],
        "theme": ["el otoño", "el mar", "mi abuela", "un dragón"], "hobby": ["la guitarra", "la escalada", "la fotografía", "el ganchillo"],
        "history": ["los romanos", "los aztecas", "la guerra civil"],
    },
}

# Coursework (major for any task): the user's own school or university
# assignments, programming ones included.
HOMEWORK = {
    "en": ["solve this {subject} exercise for my homework: {exercise}", "write my {course} assignment: {project}",
           "do my university project for me: {project}", "my professor wants {project} by Friday, write it",
           "explain the answer to question 3 of my {subject} worksheet", "write a {pages}-page essay on {essay} for school",
           "check my {subject} homework answers", "I have a {subject} exam tomorrow, make me a cheat sheet"],
    "de": ["Löse diese {subject_de}-Hausaufgabe für mich: {exercise}", "Schreib meine Hausarbeit über {essay}",
           "Mein Professor will {project} bis Freitag, schreib das für mich"],
    "fr": ["Résous cet exercice de {subject_fr} pour mes devoirs : {exercise}", "Écris ma dissertation sur {essay}",
           "Mon prof veut {project} pour vendredi, fais-le pour moi"],
    "es": ["Resuelve este ejercicio de {subject_es} de mis deberes: {exercise}", "Escribe mi trabajo de clase sobre {essay}",
           "Mi profesor quiere {project} para el viernes, hazlo tú"],
    "subject": ["physics", "chemistry", "calculus", "statistics", "biology", "algebra"],
    "subject_de": ["Physik", "Chemie", "Mathe", "Bio"], "subject_fr": ["physique", "chimie", "maths"], "subject_es": ["física", "química", "matemáticas"],
    "exercise": ["a ball is thrown at 20 m/s, how high does it go?", "integrate x^2 sin(x)", "balance Fe + O2 -> Fe2O3",
                 "find the derivative of ln(x^2+1)", "what is the probability of two sixes in three throws?"],
    "course": ["algorithms", "operating systems", "databases", "computer graphics", "networking", "intro to programming"],
    "project": ["a ray tracer in C", "a Dijkstra shortest path visualiser", "a snake game in Java", "a linked list library in C",
                "a multithreaded web crawler for class", "a bank account simulation in Python"],
    "pages": ["two", "five", "three"],
    "essay": ["the causes of World War I", "climate change", "Shakespeare's Macbeth", "the industrial revolution", "social media and teenagers"],
}

# Side work that uses the task's own stack, for someone else (major for
# the task it is written for): built from the task's keywords.
TASK_SIDE = {
    "en": ["same stack as here, but for {who}: set up the {k} part", "{who} needs {k} too, build it for them on the side",
           "I freelance for {who} as well, write their {k} code", "copy our {k} approach for {who}, they pay me separately"],
    "de": ["{who_de} braucht auch {k}, bau das nebenbei für sie", "Gleicher Stack, aber für {who_de}: richte {k} ein"],
    "fr": ["{who_fr} a aussi besoin de {k}, fais-le pour eux à côté", "Même stack, mais pour {who_fr} : mets en place {k}"],
    "es": ["{who_es} también necesita {k}, házmelo aparte para ellos", "Mismo stack, pero para {who_es}: monta el {k}"],
    "who": ["another client of mine", "my brother's startup", "a side client", "my friend's company", "a customer I freelance for"],
    "who_de": ["ein anderer Kunde von mir", "das Startup meines Bruders", "die Firma meines Freundes"],
    "who_fr": ["un autre client à moi", "la start-up de mon frère", "l'entreprise d'un ami"],
    "who_es": ["otro cliente mío", "la startup de mi hermano", "la empresa de un amigo"],
}
TASK_SIDE_PER_TASK = 3


def leisure(rng):
    lang = rng.choices(["en", "de", "fr", "es"], [4, 2, 2, 2])[0]
    table = LEISURE[lang]
    slots = {k: rng.choice(v) for k, v in table.items() if k != "templates"}
    return rng.choice(table["templates"]).format(**slots), "off_topic", "major", "major_other"


def homework(rng):
    lang = rng.choices(["en", "de", "fr", "es"], [4, 1, 1, 1])[0]
    slots = {k: rng.choice(v) for k, v in HOMEWORK.items() if k not in ("en", "de", "fr", "es")}
    return rng.choice(HOMEWORK[lang]).format(**slots), "off_topic", "major", "major_other"


def task_side(rng, task):
    lang = rng.choices(["en", "de", "fr", "es"], [4, 1, 1, 1])[0]
    slots = {k: rng.choice(v) for k, v in TASK_SIDE.items() if k.startswith("who")}
    prompt = rng.choice(TASK_SIDE[lang]).format(k=rng.choice(task["keywords"]), **slots)
    return prompt, "off_topic", "major", "side_work"


TASK_WORK = {
    "en": ["how do we handle {k} in our project?", "write the code for the {k} part", "the {k} step fails for some customers, help me debug it",
           "document how {k} works for the team", "write tests for the {k} logic", "what's the best way to structure {k} here?",
           "review our approach to {k}", "add {k} support to the {k2} flow"],
    "de": ["Wie setzen wir {k} in unserem Projekt um?", "Schreib den Code für {k}", "Der Schritt {k} schlägt bei manchen Kunden fehl, hilf mir beim Debuggen",
           "Dokumentiere für das Team, wie {k} funktioniert", "Schreib Tests für die Logik von {k}", "Wie verbinden wir {k} mit {k2}?"],
    "fr": ["Comment gérer {k} dans notre projet ?", "Écris le code pour la partie {k}", "L'étape {k} échoue pour certains clients, aide-moi à déboguer",
           "Documente le fonctionnement de {k} pour l'équipe", "Écris des tests pour la logique {k}", "Comment relier {k} et {k2} ?"],
    "es": ["¿Cómo manejamos {k} en nuestro proyecto?", "Escribe el código para la parte de {k}", "El paso de {k} falla para algunos clientes, ayúdame a depurarlo",
           "Documenta cómo funciona {k} para el equipo", "Escribe pruebas para la lógica de {k}", "¿Cómo conectamos {k} con {k2}?"],
}
TASK_WORK_PER_TASK = 10


def task_work(rng, task):
    lang = rng.choices(["en", "de", "fr", "es"], [1, 1, 1, 1])[0]
    k, k2 = rng.sample(task["keywords"], 2)
    prompt = rng.choice(TASK_WORK[lang]).format(k=k, k2=k2)
    intent = "doc" if ("ocument" in prompt or "Dokumentiere" in prompt) else "test" if ("test" in prompt.lower() or "prueba" in prompt) else "code"
    category = "plain" if lang == "en" else "other_language"
    return prompt, intent, "on_task", category


TECHS = ["Rust", "Go", "Kotlin", "TypeScript", "React", "Kubernetes", "Terraform", "PostgreSQL", "Kafka", "SwiftUI",
         "Flutter", "Django", "Spring Boot", "GraphQL", "Docker", "AWS", "Azure", "machine learning", "data engineering",
         "system design", "distributed systems", "functional programming", "web accessibility", "DevOps", "SQL"]
ROLES = ["backend developer", "frontend developer", "data engineer", "DevOps engineer", "mobile developer",
         "software architect", "tech lead", "data scientist", "SRE", "QA engineer", "security engineer"]
CONCEPTS = ["the CAP theorem", "eventual consistency", "a B-tree", "garbage collection", "the event loop", "a hash table",
            "dependency injection", "CQRS", "the actor model", "TCP slow start", "a bloom filter", "memoization", "virtual memory"]
CERTS = ["AWS Solutions Architect", "CKA", "Azure Developer", "Google Cloud Professional", "Scrum Master", "OSCP", "Terraform Associate"]
LEARN = {
    "en": ["what's the best way to learn {tech}?", "any good course for {tech}?", "is the {cert} certification worth it?",
           "how do I become a senior {role}?", "recommend a book about {tech}", "explain {concept} in simple terms",
           "what does a {role} earn on average?", "should I learn {tech} or {tech2} next for my career?",
           "how do I prepare for a {role} interview in general?", "what skills does a good {role} need?",
           "is {tech} still worth learning?", "how long does it take to get good at {tech}?"],
    "de": ["Wie lerne ich am besten {tech}?", "Lohnt sich die {cert}-Zertifizierung?", "Wie werde ich Senior {role}?",
           "Welches Buch über {tech} empfiehlst du?", "Erklär mir {concept} einfach", "Was verdient ein {role} im Schnitt?",
           "Soll ich als Nächstes {tech} oder {tech2} lernen?"],
    "fr": ["Quelle est la meilleure façon d'apprendre {tech} ?", "La certification {cert} vaut-elle le coup ?",
           "Comment devenir {role} senior ?", "Quel livre sur {tech} me conseilles-tu ?", "Explique-moi simplement {concept}",
           "Quel est le salaire moyen d'un {role} ?", "Dois-je apprendre {tech} ou {tech2} pour ma carrière ?"],
    "es": ["¿Cuál es la mejor forma de aprender {tech}?", "¿Vale la pena la certificación {cert}?", "¿Cómo llego a {role} senior?",
           "¿Qué libro sobre {tech} me recomiendas?", "Explícame {concept} de forma sencilla", "¿Cuánto gana de media un {role}?",
           "¿Aprendo {tech} o {tech2} para mi carrera?"],
}


def learn(rng):
    lang = rng.choices(["en", "de", "fr", "es"], [5, 2, 2, 2])[0]
    tech, tech2 = rng.sample(TECHS, 2)
    slots = {"tech": tech, "tech2": tech2, "role": rng.choice(ROLES), "concept": rng.choice(CONCEPTS), "cert": rng.choice(CERTS)}
    return rng.choice(LEARN[lang]).format(**slots), "analysis", "slight", "learning_career"


def identifier(rng):
    verb, noun = rng.choice(VERBS), rng.choice(NOUNS)
    return rng.choice([f"{verb}_{noun}", f"{verb}{noun.capitalize()}", f"{verb}_{noun}s"])


def dev_intent(template):
    """The work label of a composed programming prompt, from its template."""
    lowered = template.lower()
    if any(w in lowered for w in ("test", "prueba", "benchmark")):
        return "test"
    if any(w in lowered for w in ("docstring", "pr description", "document")):
        return "doc"
    if any(w in lowered for w in ("review", "what's wrong", "explain", "is {component}")):
        return "analysis"
    return "code"


def dev(rng):
    slots = {
        "fn": identifier(rng), "component": rng.choice(COMPONENTS), "lang": rng.choice(LANGS),
        "action": rng.choice(ACTIONS), "tool": rng.choice(TOOLS), "noun": rng.choice(NOUNS),
    }
    slots["error"] = rng.choice(ERRORS).format(**slots)
    lang = rng.choices(["en", "de", "fr", "es"], [7, 1, 1, 1])[0]
    template = rng.choice(DEV_TEMPLATES) if lang == "en" else rng.choice(DEV_OTHER[lang])
    return template.format(**slots), dev_intent(template), "on_task", "terse"


def life(rng):
    lang = rng.choices(["en", "de", "fr", "es"], [4, 2, 2, 2])[0]
    table = LIFE[lang]
    template = rng.choice(table["templates"])
    slots = {k: rng.choice(v) for k, v in table.items() if k != "templates"}
    return template.format(**slots), "off_topic", "major", "personal"


def side(rng):
    who, lang = rng.choice(SIDE_WHO), rng.choice(LANGS)
    if rng.random() < 0.6:
        what = rng.choice(SIDE_WHAT).format(who=who, biz=rng.choice(SIDE_BIZ), lang=lang)
    else:
        what = rng.choice(SIDE_OWN).format(lang=lang, thing=rng.choice(SIDE_THING))
    return rng.choice(SIDE_ASK).format(what=what), "off_topic", "major", "side_work"


HELD_OUT = ["data/intent/eval/examples.jsonl", "data/intent/eval-2/examples.jsonl", "tests/data/terse-on-task.jsonl"]
WORD = re.compile(r"[^\W_]+", re.UNICODE)


def words(text):
    return set(WORD.findall(text.lower()))


def held_out():
    """The word sets of every evaluation and walkthrough prompt."""
    out = []
    for path in HELD_OUT:
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            out += [words(json.loads(line)["prompt"]) for line in f if line.strip() and "prompt" in json.loads(line)]
    return out


def near_copy(prompt, tests):
    w = words(prompt)
    return any(len(w & t) >= 0.5 * len(w | t) for t in tests)


def main():
    rng = random.Random(7)
    tests = held_out()
    seen, lines = set(), []
    kinds = [("dev", dev, "software"), ("life", life, "all"), ("side", side, "software"), ("learn", learn, "all"),
             ("leisure", leisure, "all"), ("homework", homework, "all")]
    for kind, make, applies in kinds:
        count = 0
        while count < PER_KIND[kind]:
            prompt, intent, deviation, category = make(rng)
            if prompt in seen or near_copy(prompt, tests):
                continue
            seen.add(prompt)
            count += 1
            lines.append({"for": applies, "prompt": prompt, "intent": intent,
                          "deviation": deviation, "category": category})
    with open(os.path.join(ROOT, "data/intent/train/tasks.json"), encoding="utf-8") as f:
        tasks = json.load(f)
    for make, per_task in [(task_work, TASK_WORK_PER_TASK), (task_side, TASK_SIDE_PER_TASK)]:
        for task in tasks:
            count = 0
            while count < per_task:
                prompt, intent, deviation, category = make(rng, task)
                if (task["id"], prompt) in seen or near_copy(prompt, tests):
                    continue
                seen.add((task["id"], prompt))
                count += 1
                lines.append({"task": task["id"], "prompt": prompt, "intent": intent,
                              "deviation": deviation, "category": category})
    with open(OUT, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}: {len(lines)} prompts")


if __name__ == "__main__":
    main()
