"""Fixed vocabularies the demo generator draws from.

Everything here is synthetic or public reference data: invented names, real
ICD-10-CM codes (from the CMS CCW 30-condition list, all also flagged chronic
by AHRQ CCI), the fee amounts and CARC/RARC pairings of
``docs/reference/ccm-rules.md``.  Kept as plain data so a reviewer can
read what the demo practice looks like without reading the generator.
"""
from __future__ import annotations

FEMALE_FIRST = (
    "Mary", "Patricia", "Linda", "Barbara", "Elizabeth", "Jennifer", "Maria", "Susan", "Margaret", "Dorothy",
    "Lisa", "Nancy", "Karen", "Betty", "Helen", "Sandra", "Donna", "Carol", "Ruth", "Sharon", "Michelle",
    "Laura", "Sarah", "Kimberly", "Deborah", "Jessica", "Shirley", "Cynthia", "Angela", "Melissa", "Brenda",
    "Amy", "Anna", "Rebecca", "Virginia", "Kathleen", "Pamela", "Martha", "Debra", "Amanda", "Stephanie",
    "Carolyn", "Christine", "Marie", "Janet", "Catherine", "Frances", "Ann", "Joyce", "Diane", "Alice",
    "Julie", "Heather", "Teresa", "Doris", "Gloria", "Evelyn", "Jean", "Cheryl", "Mildred", "Katherine",
    "Joan", "Ashley", "Judith", "Rose", "Janice", "Kelly", "Nicole", "Judy", "Christina", "Kathy", "Theresa",
    "Beverly", "Denise", "Tammy", "Irene", "Jane", "Lori", "Rachel", "Marilyn", "Andrea", "Kathryn", "Louise",
    "Sara", "Anne", "Jacqueline", "Wanda", "Bonnie", "Julia", "Ruby", "Lois", "Tina", "Phyllis", "Norma",
    "Paula", "Diana", "Annie", "Lillian", "Emily", "Robin", "Peggy", "Crystal", "Gladys", "Rita", "Dawn",
    "Connie", "Florence", "Tracy", "Edna", "Tiffany", "Carmen", "Rosa", "Cindy", "Grace", "Wendy", "Victoria",
    "Edith", "Kim", "Sherry", "Sylvia", "Josephine", "Thelma", "Shannon", "Sheila", "Ethel", "Ellen", "Elaine",
    "Marjorie", "Carrie", "Charlotte", "Monica", "Esther", "Pauline", "Emma", "Juanita", "Anita", "Rhonda",
    "Hazel", "Amber", "Eva", "Debbie", "April", "Leslie", "Clara", "Lucille", "Jamie", "Joanne", "Eleanor",
)
MALE_FIRST = (
    "James", "John", "Robert", "Michael", "William", "David", "Richard", "Charles", "Joseph", "Thomas",
    "Christopher", "Daniel", "Paul", "Mark", "Donald", "George", "Kenneth", "Steven", "Edward", "Brian",
    "Ronald", "Anthony", "Kevin", "Jason", "Matthew", "Gary", "Timothy", "Jose", "Larry", "Jeffrey", "Frank",
    "Scott", "Eric", "Stephen", "Andrew", "Raymond", "Gregory", "Joshua", "Jerry", "Dennis", "Walter",
    "Patrick", "Peter", "Harold", "Douglas", "Henry", "Carl", "Arthur", "Ryan", "Roger", "Joe", "Juan",
    "Jack", "Albert", "Jonathan", "Justin", "Terry", "Gerald", "Keith", "Samuel", "Willie", "Ralph",
    "Lawrence", "Nicholas", "Roy", "Benjamin", "Bruce", "Brandon", "Adam", "Harry", "Fred", "Wayne", "Billy",
    "Steve", "Louis", "Jeremy", "Aaron", "Randy", "Howard", "Eugene", "Carlos", "Russell", "Bobby", "Victor",
    "Martin", "Ernest", "Phillip", "Todd", "Jesse", "Craig", "Alan", "Shawn", "Clarence", "Sean", "Philip",
    "Chris", "Johnny", "Earl", "Jimmy", "Antonio", "Danny", "Bryan", "Tony", "Luis", "Mike", "Stanley",
    "Leonard", "Nathan", "Dale", "Manuel", "Rodney", "Curtis", "Norman", "Allen", "Marvin", "Vincent",
    "Glenn", "Jeffery", "Travis", "Jeff", "Chad", "Jacob", "Lee", "Melvin", "Alfred", "Kyle", "Francis",
    "Bradley", "Jesus", "Herbert", "Frederick", "Ray", "Joel", "Edwin", "Don", "Eddie", "Ricky", "Troy",
)
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green",
    "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez",
    "Phillips", "Evans", "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart",
    "Morris", "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson",
    "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson", "Brooks",
    "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price", "Alvarez", "Castillo",
    "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Jimenez", "Powell", "Jenkins", "Perry", "Russell",
    "Sullivan", "Bell", "Coleman", "Butler", "Henderson", "Barnes", "Gonzales", "Fisher", "Vasquez",
    "Simmons", "Romero", "Jordan", "Patterson", "Alexander", "Hamilton", "Graham", "Reynolds", "Griffin",
    "Wallace", "Moreno", "West", "Cole", "Hayes", "Bryant", "Herrera", "Gibson", "Ellis", "Tran", "Medina",
    "Aguilar", "Stevens", "Murray", "Ford", "Castro", "Marshall", "Owens", "Harrison", "Fernandez",
    "McDonald", "Woods", "Washington", "Kennedy", "Wells", "Vargas", "Henry", "Chen", "Freeman", "Webb",
    "Tucker", "Guzman", "Burns", "Crawford", "Olson", "Simpson", "Porter", "Hunter", "Gordon", "Mendez",
    "Silva", "Shaw", "Snyder", "Mason", "Dixon", "Munoz", "Hunt", "Hicks", "Holmes", "Palmer", "Wagner",
    "Black", "Robertson", "Boyd", "Rose", "Stone", "Salazar", "Fox", "Warren", "Mills", "Meyer", "Rice",
    "Schmidt", "Garza", "Daniels", "Ferguson", "Nichols", "Stephens", "Soto", "Weaver", "Ryan", "Gardner",
    "Payne", "Grant", "Dunn", "Kelley", "Spencer", "Hawkins", "Arnold", "Pierce", "Vazquez", "Hansen",
    "Peters", "Santos", "Hart", "Bradley", "Knight", "Elliott", "Cunningham", "Duncan", "Armstrong",
    "Hudson", "Carroll", "Lane", "Riley", "Andrews", "Alvarado", "Ray", "Delgado", "Berry", "Perkins",
    "Hoffman", "Johnston", "Matthews", "Pena", "Richards", "Contreras", "Willis", "Carpenter", "Lawrence",
    "Sandoval", "Guerrero", "George", "Chapman", "Rios", "Estrada", "Ortega", "Watkins", "Greene", "Nunez",
    "Wheeler", "Valdez", "Harper", "Burke", "Larson", "Santiago", "Maldonado", "Morrison", "Franklin",
    "Carlson", "Austin", "Dominguez", "Carr", "Lawson", "Jacobs", "Obrien", "Lynch", "Singh", "Vega",
    "Bishop", "Montgomery", "Oliver", "Jensen", "Harvey", "Williamson", "Gilbert", "Dean", "Sims", "Espinoza",
    "Howell", "Li", "Wong", "Reid", "Hanson", "Le", "McCoy", "Garrett", "Burton", "Fuller", "Wang", "Weber",
)

PRACTICE_NAME = "Riverbend Family Medicine"
CLINIC_NAMES = (
    "Riverbend North", "Riverbend Eastgate", "Riverbend Westside", "Riverbend Lakeview", "Riverbend Hillcrest",
    "Riverbend Southport", "Riverbend Meadows", "Riverbend Oakridge", "Riverbend Pine Valley",
    "Riverbend Harbor", "Riverbend Fairview", "Riverbend Summit",
)

# Billing practitioner credential mix (cycled): physicians and NPPs who may bill CCM.
PCP_CREDENTIALS = ("MD", "MD", "DO", "NP", "PA", "MD")
CARE_MANAGER_CREDENTIALS = ("RN", "RN", "LPN", "MA", "RN", "LPN", "MA", "RN")

# Chronic conditions: (CCW condition key, share of eligible patients weight, ICD-10-CM codes without dots).
# Every code is in the CCW 2022 list for that condition and flagged chronic by AHRQ CCI 2019.1.
CHRONIC_CONDITIONS = (
    ("HYPERT", 0.62, ("I10",)),
    ("HYPERL", 0.50, ("E785", "E782", "E7800")),
    ("DIABETES", 0.30, ("E119", "E1165", "E1140")),
    ("RAOA", 0.28, ("M170", "M1711")),
    ("ISCHMCHT", 0.20, ("I2510",)),
    ("CKD", 0.17, ("N183", "N184")),
    ("HYPOTH", 0.15, ("E039",)),
    ("DEPRESSN", 0.14, ("F329", "F331")),
    ("ATRIALF", 0.12, ("I4891", "I480")),
    ("CHF", 0.12, ("I509", "I5022", "I5032")),
    ("COPD", 0.12, ("J449", "J441")),
    ("OSTEOPRS", 0.09, ("M810",)),
    ("ASTHMA", 0.05, ("J45909", "J4540")),
    ("ALZH", 0.05, ("G309",)),
    ("STRKETIA", 0.04, ("I639",)),
    ("CNCRPRST", 0.04, ("C61",)),
    ("NONADDEM", 0.03, ("F0390",)),
    ("PARKINSN", 0.02, ("G20",)),
)
# Acute problems: AHRQ CCI chronic indicator 0 and in no CCW condition (so they never make a patient eligible).
ACUTE_CODES = ("J069", "N390", "J209", "J0190", "M545", "L03115", "R0789", "K529")

PAYERS = ("Medicare Part B", "Medicare Advantage", "Medicaid", "Commercial")
PAYER_CODE = {"Medicare Part B": "MCB", "Medicare Advantage": "MADV", "Medicaid": "MCD", "Commercial": "COM"}
# Allowed amount as a share of the national Medicare fee, coinsurance share, sequestration share.
PAYER_TERMS = {
    "Medicare Part B": (1.00, 0.20, 0.02),
    "Medicare Advantage": (1.00, 0.20, 0.0),
    "Medicaid": (0.75, 0.0, 0.0),
    "Commercial": (1.15, 0.20, 0.0),
}

# National non-facility amounts (docs/reference/ccm-rules.md §1). A year without an amount uses the nearest year that has one.
NATIONAL_FEES = {
    2025: {"99490": 60.49, "99439": 45.93, "99487": 131.65, "99489": 70.52, "99491": 82.16, "99424": 80.87},
    2026: {"99490": 66.13, "99439": 50.44, "99487": 144.29, "99489": 78.16, "99424": 88.00},
}
# The practice's charge master: list prices above any payer's allowed amount, as practices set them.
CHARGE_MASTER = {"99490": 85.00, "99439": 65.00, "99487": 180.00, "99489": 95.00, "99491": 115.00, "99424": 120.00}


def national_fee(code: str, year: int) -> float:
    """Fee for ``code`` in ``year``, from the nearest year that lists it (demo data only)."""
    years = sorted(y for y, fees in NATIONAL_FEES.items() if code in fees)
    best = min(years, key=lambda y: (abs(y - year), -y))
    return NATIONAL_FEES[best][code]


DECLINE_REASONS = (("not interested", 0.45), ("cost-sharing concern", 0.30),
                   ("already enrolled elsewhere", 0.10), ("prefers to manage own care", 0.15))
UNREACHABLE_REASON = "unreachable"
INELIGIBLE_REASON = "fewer than 2 chronic conditions"
DISENROLL_REASONS = (("patient request", 0.35), ("moved", 0.15), ("deceased", 0.18),
                     ("changed practice", 0.17), ("hospice", 0.15))

# Random (non-planted) denials: (group, CARC, RARC or None, weight, worth appealing).
RANDOM_DENIALS = (
    ("CO", "16", "MA130", 0.16, True),
    ("CO", "16", "M51", 0.10, True),
    ("CO", "97", "M15", 0.10, True),
    ("CO", "97", "N20", 0.06, True),
    ("CO", "50", None, 0.14, True),
    ("CO", "29", None, 0.07, False),
    ("CO", "22", None, 0.09, True),
    ("CO", "27", None, 0.08, False),
    ("CO", "4", "M77", 0.10, True),
)

ACTIVITIES = ("phone_call", "med_reconciliation", "care_plan_update", "coordination", "lab_review",
              "transition_followup")
ACTIVITY_WEIGHTS = (0.35, 0.15, 0.12, 0.18, 0.12, 0.08)
INTERACTIVE_ACTIVITIES = ("phone_call", "transition_followup")

# Vague notes an auditor rejects: the phrases the audit checklist looks for.
VAGUE_NOTES = ("CCM call completed", "Followed up with patient", "Spoke with patient", "LVM", "CCM time")

_DRUGS = ("amlodipine", "lisinopril", "metformin", "atorvastatin", "furosemide", "metoprolol", "apixaban",
          "levothyroxine", "sertraline", "tiotropium inhaler", "insulin glargine", "losartan", "carvedilol",
          "empagliflozin", "donepezil", "alendronate", "warfarin", "spironolactone")
_SPECIALISTS = ("cardiology", "nephrology", "endocrinology", "pulmonology", "neurology", "orthopedics",
                "podiatry", "ophthalmology", "behavioral health", "physical therapy")
FILLS = {
    "drug": _DRUGS,
    "drug2": _DRUGS,
    "bp": ("150s/90s", "140s/80s", "160s/95", "130s/70s", "128/76 avg", "145/88 avg", "170/100 x2"),
    "glucose": ("140-180", "110-130", "200s", "90-120", "180-240"),
    "symptom": ("mild ankle swelling", "more SOB on stairs", "dizziness on standing", "good energy, no new issues",
                "poor sleep", "increased cough with clear sputum", "low mood, less appetite"),
    "weight": ("+3", "+4", "-2", "+2.5", "+5"),
    "a1c": ("7.5", "8.0", "7.0"),
    "specialist": _SPECIALISTS,
    "service": ("skilled nursing", "PT", "OT", "home aide"),
    "lab": ("A1c 8.2 (was 7.6)", "LDL 142", "TSH 6.1", "INR 3.4", "Cr 1.6, eGFR 41", "K 5.3", "Hgb 10.9",
            "BNP 620", "A1c 7.1 (improved)", "LDL 88 at goal"),
    "weeks": ("2", "4", "6", "12"),
    "days": ("35", "48", "60", "72"),
    "adherence": ("missing 2-3 doses/wk", "taking as prescribed", "stopped 1 wk ago due to cough",
                  "confused about AM/PM doses"),
    "source": ("cardiology visit", "hospital discharge", "ED visit", "nephrology change", "new pharmacy"),
    "dose": ("5 mg daily", "10 mg daily", "20 mg BID", "25 mg daily", "40 mg daily"),
    "goal": ("daily weights with call-if +3 lb rule", "walking 15 min 5x/wk", "home BP log twice daily",
             "fall-prevention home check", "inhaler technique review", "low-sodium meal plan"),
    "condition": ("HTN", "DM2", "CHF", "COPD", "CKD 3", "AFib", "depression", "OA knee"),
    "reason": ("chest pain, ruled out MI", "COPD exacerbation", "fall without fracture", "hyperglycemia",
               "CHF fluid overload", "UTI"),
    "advice": ("hold furosemide dose per PCP, recheck tomorrow", "increase fluids", "low-salt diet review",
               "schedule visit this week", "continue current plan"),
    "n": ("2", "3", "5", "7"),
    "when": ("next Tue", "in 2 wks", "3/14", "on the 21st", "next month"),
}
NOTE_TEMPLATES = {
    "phone_call": (
        "Called pt re {drug} adherence: {adherence}. Reviewed home BP log {bp}; reinforced low-sodium diet.",
        "Phone check-in: pt reports {symptom}; reviewed red-flag symptoms and when to call; next call {when}.",
        "Called pt: home glucose {glucose} fasting; reviewed hypoglycemia plan, confirmed {drug} dose.",
        "Called pt's daughter (caregiver) re {symptom}; updated care team contacts and after-hours number.",
        "Called pt re weight change {weight} lb over 3 days; advised {advice}; PCP notified.",
        "Check-in call: {condition} stable, pt reports {symptom}; reviewed goal: {goal}.",
    ),
    "med_reconciliation": (
        "Med reconciliation after {source}: {drug} changed to {dose}; removed duplicate {drug2} from list.",
        "Reviewed pill organizer by phone; pt missing evening {drug}; arranged pharmacy blister packs.",
        "Reconciled med list with pharmacy fill history: {drug} last filled {days} days ago; refill requested.",
        "Med review: {drug} and {drug2} interaction flagged to PCP; pt told to hold OTC NSAIDs.",
    ),
    "care_plan_update": (
        "Updated care plan goals for {condition}: A1c < {a1c}, BP < 140/90; added {goal}; copy sent to pt.",
        "Care plan review: {condition} goals on track; added {goal}; shared updated plan via portal.",
        "Revised care plan after {source}: new {drug} {dose}; reviewed self-management steps with pt.",
    ),
    "coordination": (
        "Coordinated with {specialist} office re referral; appt {when}; sent last notes and med list.",
        "Faxed updated med list to home health agency; confirmed {service} visits 2x/wk.",
        "Arranged transportation to {specialist} appt {when} via county ride program.",
        "Requested {specialist} consult note; will review with PCP and update care plan.",
    ),
    "lab_review": (
        "Reviewed labs: {lab}; informed pt, repeat in {weeks} wks per PCP.",
        "Lab review: {lab}; flagged to PCP re {drug} dosing; pt informed by phone.",
        "Reviewed home monitoring and labs ({lab}); no change per PCP; reinforced {goal}.",
    ),
    "transition_followup": (
        "Post-discharge call day {n}: reviewed discharge summary, new {drug} {dose}; follow-up visit booked.",
        "ED follow-up: seen for {reason}; reviewed instructions, confirmed PCP appt {when}.",
        "Transition call after {source}: reconciled meds, {drug} stopped; home health start confirmed.",
    ),
}
RPM_NOTES = (
    "Reviewed RPM BP readings: 7-day avg {bp}; {advice}.",
    "RPM glucose data reviewed: fasting {glucose}; messaged pt re {drug} timing.",
    "RPM weight trend {weight} lb; called pt, {advice}.",
    "RPM alert for BP {bp}; rechecked with pt by phone, asymptomatic; PCP aware.",
)
PCM_NOTES = (
    "PCM (cardiology): reviewed HF plan, weight log {weight} lb, adjusted {drug}; labs {lab}.",
    "PCM: reviewed AFib rate control and {drug} dosing; coordinated INR checks; pt informed.",
    "PCM: {condition} focused review, titrated {drug} to {dose}; follow-up call {when}.",
)
NONCLINICAL_NOTES = (
    "Scheduled {specialist} appointment {when} and mailed reminder letter.",
    "Rescheduled PCP follow-up to {when}; updated phone number on file.",
    "Mailed care plan copy and program brochure; confirmed mailing address.",
)
INPATIENT_NOTES = (
    "Called hospital case manager while pt admitted; discussed discharge planning and home needs.",
    "Pt currently inpatient; reviewed admission notes and updated care team.",
    "Spoke with SNF nurse re pt status and expected discharge date.",
)
FACILITY_NAMES = {
    "inpatient": ("Mercy General Hospital", "St. Luke's Medical Center", "Valley Regional Hospital"),
    "SNF": ("Riverbend Skilled Nursing", "Oakview Rehabilitation Center", "Maple Grove Care Center"),
}
