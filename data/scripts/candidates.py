"""Candidate facts for ``check_facts.py``: relations, prompt templates and ground truth.

The ground truth was written for this project from general world knowledge
and checked by hand; candidates whose answer is disputed, changed recently, or
ambiguous (a capital that is moving, a dish claimed by several countries, a
company founded in one country and now based in another) were left out rather
than guessed. Whether the default model *knows* a candidate is decided by
``check_facts.py``; this file only says what is true.

Conventions:

- A subject that needs an article is written with a leading lowercase
  ``"the "`` (``"the Netherlands"``). The article is part of the rendered prompt
  (capitalized at the start of a sentence) but not of the subject, so the
  subject string always occurs verbatim in every prompt.
- A target may list accepted spellings separated by ``"|"``. The first one is
  canonical (it names the object when it is used as a counterfactual target);
  the others are spellings the model may prefer (``"Kyiv|Kiev"``). All
  spellings of one object must be listed, in the same order, wherever it occurs.
- Templates hold one ``{}`` for the subject. ``main`` is the prompt the fact is
  checked on; ``paraphrases`` (at least three) are other ways to ask the same
  thing, used for generalization prompts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Relation:
    """One relation: its templates and its candidate (subject, target) facts."""

    name: str
    description: str
    main: str
    paraphrases: tuple[str, ...]
    facts: tuple[tuple[str, str], ...]
    case_variants: bool = False  # also accept the target with its first letter in the other case


US = "the United States|the USA|the US|America|the United States of America"
UK = "the United Kingdom|the UK|Britain|England|Great Britain"
KOREA = "South Korea|Korea"

CAPITAL = Relation(
    name="capital",
    description="country -> capital city",
    main="The capital of {} is",
    paraphrases=(
        "The capital city of {} is",
        "{}'s capital city is",
        "The city that serves as the capital of {} is",
        "The seat of the national government of {} is the city of",
    ),
    facts=(
        # Africa
        ("Algeria", "Algiers"), ("Angola", "Luanda"), ("Botswana", "Gaborone"),
        ("Burkina Faso", "Ouagadougou"), ("Cameroon", "Yaoundé|Yaounde"), ("Cape Verde", "Praia"),
        ("the Central African Republic", "Bangui"), ("Chad", "N'Djamena"), ("Comoros", "Moroni"),
        ("the Democratic Republic of the Congo", "Kinshasa"), ("the Republic of the Congo", "Brazzaville"),
        ("Egypt", "Cairo"), ("Eritrea", "Asmara"), ("Ethiopia", "Addis Ababa"), ("Gabon", "Libreville"),
        ("the Gambia", "Banjul"), ("Ghana", "Accra"), ("Guinea", "Conakry"), ("Kenya", "Nairobi"),
        ("Lesotho", "Maseru"), ("Liberia", "Monrovia"), ("Libya", "Tripoli"),
        ("Madagascar", "Antananarivo"), ("Malawi", "Lilongwe"), ("Mali", "Bamako"),
        ("Mauritania", "Nouakchott"), ("Mauritius", "Port Louis"), ("Morocco", "Rabat"),
        ("Mozambique", "Maputo"), ("Namibia", "Windhoek"), ("Niger", "Niamey"), ("Nigeria", "Abuja"),
        ("Rwanda", "Kigali"), ("Senegal", "Dakar"), ("Seychelles", "Victoria"),
        ("Sierra Leone", "Freetown"), ("Somalia", "Mogadishu"), ("South Sudan", "Juba"),
        ("Sudan", "Khartoum"), ("Tanzania", "Dodoma"), ("Togo", "Lomé|Lome"), ("Uganda", "Kampala"),
        ("Zambia", "Lusaka"), ("Zimbabwe", "Harare"),
        # Asia
        ("Afghanistan", "Kabul"), ("Armenia", "Yerevan"), ("Azerbaijan", "Baku"), ("Bahrain", "Manama"),
        ("Bangladesh", "Dhaka"), ("Bhutan", "Thimphu"), ("Brunei", "Bandar Seri Begawan"),
        ("Cambodia", "Phnom Penh"), ("China", "Beijing"), ("East Timor", "Dili"),
        ("India", "New Delhi"), ("Indonesia", "Jakarta"), ("Iran", "Tehran"), ("Iraq", "Baghdad"),
        ("Japan", "Tokyo"), ("Jordan", "Amman"), ("Kazakhstan", "Astana"), ("Kyrgyzstan", "Bishkek"),
        ("Laos", "Vientiane"), ("Lebanon", "Beirut"), ("Malaysia", "Kuala Lumpur"),
        ("the Maldives", "Malé|Male"), ("Mongolia", "Ulaanbaatar|Ulan Bator"),
        ("Myanmar", "Naypyidaw|Nay Pyi Taw"), ("Nepal", "Kathmandu"), ("North Korea", "Pyongyang"),
        ("Oman", "Muscat"), ("Pakistan", "Islamabad"), ("the Philippines", "Manila"), ("Qatar", "Doha"),
        ("Saudi Arabia", "Riyadh"), ("South Korea", "Seoul"), ("Syria", "Damascus"),
        ("Tajikistan", "Dushanbe"), ("Thailand", "Bangkok"), ("Turkey", "Ankara"),
        ("Turkmenistan", "Ashgabat"), ("the United Arab Emirates", "Abu Dhabi"),
        ("Uzbekistan", "Tashkent"), ("Vietnam", "Hanoi"), ("Yemen", "Sanaa|Sana'a"),
        ("Cyprus", "Nicosia"),
        # Europe
        ("Albania", "Tirana"), ("Austria", "Vienna"), ("Belarus", "Minsk"), ("Belgium", "Brussels"),
        ("Bosnia and Herzegovina", "Sarajevo"), ("Bulgaria", "Sofia"), ("Croatia", "Zagreb"),
        ("the Czech Republic", "Prague"), ("Denmark", "Copenhagen"), ("Estonia", "Tallinn"),
        ("Finland", "Helsinki"), ("France", "Paris"), ("Germany", "Berlin"), ("Greece", "Athens"),
        ("Hungary", "Budapest"), ("Iceland", "Reykjavik|Reykjavík"), ("Ireland", "Dublin"),
        ("Italy", "Rome"), ("Latvia", "Riga"), ("Liechtenstein", "Vaduz"), ("Lithuania", "Vilnius"),
        ("Malta", "Valletta"), ("Moldova", "Chișinău|Chisinau"), ("Montenegro", "Podgorica"),
        ("the Netherlands", "Amsterdam"), ("North Macedonia", "Skopje"), ("Norway", "Oslo"),
        ("Poland", "Warsaw"), ("Portugal", "Lisbon"), ("Romania", "Bucharest"), ("Russia", "Moscow"),
        ("Serbia", "Belgrade"), ("Slovakia", "Bratislava"), ("Slovenia", "Ljubljana"),
        ("Spain", "Madrid"), ("Sweden", "Stockholm"), ("Switzerland", "Bern"),
        ("Ukraine", "Kyiv|Kiev"), ("the United Kingdom", "London"), ("Scotland", "Edinburgh"),
        ("Wales", "Cardiff"), ("Northern Ireland", "Belfast"),
        # Americas
        ("Argentina", "Buenos Aires"), ("the Bahamas", "Nassau"), ("Barbados", "Bridgetown"),
        ("Belize", "Belmopan"), ("Brazil", "Brasília|Brasilia"), ("Canada", "Ottawa"),
        ("Chile", "Santiago"), ("Colombia", "Bogotá|Bogota"), ("Costa Rica", "San José|San Jose"),
        ("Cuba", "Havana"), ("the Dominican Republic", "Santo Domingo"), ("Ecuador", "Quito"),
        ("Guyana", "Georgetown"), ("Haiti", "Port-au-Prince"), ("Honduras", "Tegucigalpa"),
        ("Jamaica", "Kingston"), ("Nicaragua", "Managua"), ("Paraguay", "Asunción|Asuncion"),
        ("Peru", "Lima"), ("Suriname", "Paramaribo"), ("Trinidad and Tobago", "Port of Spain"),
        ("the United States", "Washington"), ("Uruguay", "Montevideo"), ("Venezuela", "Caracas"),
        # Oceania
        ("Australia", "Canberra"), ("Fiji", "Suva"), ("New Zealand", "Wellington"),
        ("Papua New Guinea", "Port Moresby"), ("Samoa", "Apia"), ("the Solomon Islands", "Honiara"),
        ("Tonga", "Nuku'alofa"), ("Vanuatu", "Port Vila"),
    ),
)

LANGUAGE = Relation(
    name="language",
    description="country -> main (official) language",
    main="The main language of {} is",
    paraphrases=(
        "The official language of {} is",
        "Most people in {} speak",
        "The language most widely spoken in {} is",
        "The national language of {} is",
    ),
    facts=(
        ("France", "French"), ("Germany", "German"), ("Austria", "German"), ("Italy", "Italian"),
        ("Spain", "Spanish"), ("Mexico", "Spanish"), ("Argentina", "Spanish"), ("Colombia", "Spanish"),
        ("Chile", "Spanish"), ("Peru", "Spanish"), ("Venezuela", "Spanish"), ("Cuba", "Spanish"),
        ("Ecuador", "Spanish"), ("Uruguay", "Spanish"), ("Guatemala", "Spanish"),
        ("Honduras", "Spanish"), ("Costa Rica", "Spanish"), ("Nicaragua", "Spanish"),
        ("the Dominican Republic", "Spanish"), ("Brazil", "Portuguese"), ("Portugal", "Portuguese"),
        ("Angola", "Portuguese"), ("Mozambique", "Portuguese"), ("Japan", "Japanese"),
        ("China", "Chinese|Mandarin|Mandarin Chinese"), ("South Korea", "Korean"),
        ("North Korea", "Korean"), ("Russia", "Russian"), ("Ukraine", "Ukrainian"),
        ("Poland", "Polish"), ("Greece", "Greek"), ("Turkey", "Turkish"), ("Egypt", "Arabic"),
        ("Saudi Arabia", "Arabic"), ("Iraq", "Arabic"), ("Syria", "Arabic"), ("Jordan", "Arabic"),
        ("Morocco", "Arabic"), ("Algeria", "Arabic"), ("Libya", "Arabic"), ("Yemen", "Arabic"),
        ("Iran", "Persian|Farsi"), ("Israel", "Hebrew"), ("Hungary", "Hungarian"),
        ("Romania", "Romanian"), ("Bulgaria", "Bulgarian"), ("Serbia", "Serbian"),
        ("Croatia", "Croatian"), ("the Czech Republic", "Czech"), ("Slovakia", "Slovak"),
        ("Slovenia", "Slovenian|Slovene"), ("Denmark", "Danish"), ("Sweden", "Swedish"),
        ("Norway", "Norwegian"), ("Finland", "Finnish"), ("Iceland", "Icelandic"),
        ("the Netherlands", "Dutch"), ("Estonia", "Estonian"), ("Latvia", "Latvian"),
        ("Lithuania", "Lithuanian"), ("Albania", "Albanian"), ("Thailand", "Thai"),
        ("Vietnam", "Vietnamese"), ("Indonesia", "Indonesian"), ("Malaysia", "Malay"),
        ("Bangladesh", "Bengali|Bangla"), ("Pakistan", "Urdu"), ("Mongolia", "Mongolian"),
        ("Armenia", "Armenian"), ("Azerbaijan", "Azerbaijani"), ("Kazakhstan", "Kazakh"),
        ("Uzbekistan", "Uzbek"), ("Nepal", "Nepali"), ("Myanmar", "Burmese"), ("Cambodia", "Khmer"),
        ("Laos", "Lao"), ("Ethiopia", "Amharic"), ("Somalia", "Somali"), ("Tanzania", "Swahili"),
        ("the United States", "English"), ("the United Kingdom", "English"), ("Australia", "English"),
        ("New Zealand", "English"), ("Jamaica", "English"),
    ),
)

CURRENCY = Relation(
    name="currency",
    description="country -> currency",
    main="The currency of {} is the",
    paraphrases=(
        "The official currency of {} is the",
        "The national currency of {} is the",
        "In {}, people pay for things with the",
        "The money used in {} is called the",
    ),
    case_variants=True,
    facts=(
        ("Japan", "yen"), ("China", "yuan|renminbi"), ("South Korea", "won"), ("North Korea", "won"),
        ("India", "rupee"), ("Pakistan", "rupee"), ("Nepal", "rupee"), ("Sri Lanka", "rupee"),
        ("Indonesia", "rupiah"), ("Malaysia", "ringgit"), ("Thailand", "baht"),
        ("Vietnam", "dong|đồng"), ("the Philippines", "peso"), ("Bangladesh", "taka"),
        ("Cambodia", "riel"), ("Laos", "kip"), ("Myanmar", "kyat"), ("Mongolia", "tugrik|tögrög"),
        ("Kazakhstan", "tenge"), ("Armenia", "dram"), ("Azerbaijan", "manat"),
        ("Russia", "ruble|rouble"), ("Belarus", "ruble|rouble"), ("Ukraine", "hryvnia"),
        ("Poland", "złoty|zloty"), ("the Czech Republic", "koruna"), ("Hungary", "forint"),
        ("Romania", "leu"), ("Moldova", "leu"), ("Serbia", "dinar"), ("North Macedonia", "denar"),
        ("Sweden", "krona"), ("Norway", "krone"), ("Denmark", "krone"), ("Iceland", "króna|krona"),
        ("Switzerland", "franc|Swiss franc"), ("the United Kingdom", "pound|pound sterling"),
        ("Turkey", "lira"), ("Israel", "shekel|new shekel"), ("Egypt", "pound"), ("Lebanon", "pound"),
        ("Syria", "pound"), ("Sudan", "pound"), ("Jordan", "dinar"), ("Iraq", "dinar"),
        ("Kuwait", "dinar"), ("Bahrain", "dinar"), ("Libya", "dinar"), ("Tunisia", "dinar"),
        ("Algeria", "dinar"), ("Morocco", "dirham"), ("the United Arab Emirates", "dirham"),
        ("Saudi Arabia", "riyal"), ("Qatar", "riyal"), ("Oman", "rial"), ("Iran", "rial"),
        ("Yemen", "rial"), ("Nigeria", "naira"), ("Ghana", "cedi"), ("Kenya", "shilling"),
        ("Uganda", "shilling"), ("Tanzania", "shilling"), ("Ethiopia", "birr"),
        ("South Africa", "rand"), ("Botswana", "pula"), ("Zambia", "kwacha"), ("Malawi", "kwacha"),
        ("Angola", "kwanza"), ("Mexico", "peso"), ("Argentina", "peso"), ("Chile", "peso"),
        ("Colombia", "peso"), ("Cuba", "peso"), ("Uruguay", "peso"), ("the Dominican Republic", "peso"),
        ("Brazil", "real"), ("Peru", "sol"), ("Venezuela", "bolívar|bolivar"),
        ("Paraguay", "guaraní|guarani"), ("Costa Rica", "colón|colon"), ("Guatemala", "quetzal"),
        ("Honduras", "lempira"), ("Nicaragua", "córdoba|cordoba"), ("the United States", "dollar"),
        ("Canada", "dollar"), ("Australia", "dollar"), ("New Zealand", "dollar"),
        ("Singapore", "dollar"), ("Jamaica", "dollar"), ("Germany", "euro"), ("France", "euro"),
        ("Italy", "euro"), ("Spain", "euro"), ("Portugal", "euro"), ("Greece", "euro"),
        ("Ireland", "euro"), ("the Netherlands", "euro"), ("Belgium", "euro"), ("Austria", "euro"),
        ("Finland", "euro"), ("Slovakia", "euro"), ("Slovenia", "euro"), ("Estonia", "euro"),
        ("Latvia", "euro"), ("Lithuania", "euro"), ("Luxembourg", "euro"), ("Malta", "euro"),
        ("Croatia", "euro"),
    ),
)

ELEMENT = Relation(
    name="element",
    description="chemical element -> chemical symbol",
    main="The chemical symbol for {} is",
    paraphrases=(
        "The chemical symbol of {} is",
        "In the periodic table, {} has the symbol",
        "The element {} is written with the symbol",
        "The symbol chemists use for {} is",
    ),
    facts=(
        ("hydrogen", "H"), ("helium", "He"), ("lithium", "Li"), ("beryllium", "Be"), ("boron", "B"),
        ("carbon", "C"), ("nitrogen", "N"), ("oxygen", "O"), ("fluorine", "F"), ("neon", "Ne"),
        ("sodium", "Na"), ("magnesium", "Mg"), ("aluminum", "Al"), ("silicon", "Si"),
        ("phosphorus", "P"), ("sulfur", "S"), ("chlorine", "Cl"), ("argon", "Ar"),
        ("potassium", "K"), ("calcium", "Ca"), ("scandium", "Sc"), ("titanium", "Ti"),
        ("vanadium", "V"), ("chromium", "Cr"), ("manganese", "Mn"), ("iron", "Fe"), ("cobalt", "Co"),
        ("nickel", "Ni"), ("copper", "Cu"), ("zinc", "Zn"), ("gallium", "Ga"), ("germanium", "Ge"),
        ("arsenic", "As"), ("selenium", "Se"), ("bromine", "Br"), ("krypton", "Kr"),
        ("rubidium", "Rb"), ("strontium", "Sr"), ("zirconium", "Zr"), ("molybdenum", "Mo"),
        ("palladium", "Pd"), ("silver", "Ag"), ("cadmium", "Cd"), ("indium", "In"), ("tin", "Sn"),
        ("antimony", "Sb"), ("tellurium", "Te"), ("iodine", "I"), ("xenon", "Xe"), ("cesium", "Cs"),
        ("barium", "Ba"), ("lanthanum", "La"), ("cerium", "Ce"), ("neodymium", "Nd"),
        ("europium", "Eu"), ("tungsten", "W"), ("osmium", "Os"), ("iridium", "Ir"),
        ("platinum", "Pt"), ("gold", "Au"), ("mercury", "Hg"), ("lead", "Pb"), ("bismuth", "Bi"),
        ("polonium", "Po"), ("radon", "Rn"), ("francium", "Fr"), ("radium", "Ra"),
        ("thorium", "Th"), ("uranium", "U"), ("plutonium", "Pu"),
    ),
)

LANDMARK = Relation(
    name="landmark",
    description="landmark -> city it is in",
    main="{} is located in the city of",
    paraphrases=(
        "{} is in the city of",
        "{} can be found in the city of",
        "Tourists who want to see {} travel to the city of",
        "The city where you can visit {} is",
    ),
    facts=(
        ("the Eiffel Tower", "Paris"), ("the Louvre", "Paris"), ("the Arc de Triomphe", "Paris"),
        ("Notre-Dame Cathedral", "Paris"), ("the Musée d'Orsay", "Paris"), ("Montmartre", "Paris"),
        ("the Colosseum", "Rome"), ("the Trevi Fountain", "Rome"), ("the Spanish Steps", "Rome"),
        ("Big Ben", "London"), ("Tower Bridge", "London"), ("Buckingham Palace", "London"),
        ("Westminster Abbey", "London"), ("the British Museum", "London"),
        ("Trafalgar Square", "London"), ("Piccadilly Circus", "London"), ("Hyde Park", "London"),
        ("the Statue of Liberty", "New York|New York City"),
        ("the Empire State Building", "New York|New York City"),
        ("Central Park", "New York|New York City"), ("Times Square", "New York|New York City"),
        ("the Brooklyn Bridge", "New York|New York City"), ("Wall Street", "New York|New York City"),
        ("the Metropolitan Museum of Art", "New York|New York City"),
        ("the Golden Gate Bridge", "San Francisco"), ("Alcatraz", "San Francisco"),
        ("the Space Needle", "Seattle"), ("the White House", "Washington"),
        ("the Lincoln Memorial", "Washington"), ("the Hollywood Sign", "Los Angeles"),
        ("the Willis Tower", "Chicago"), ("Wrigley Field", "Chicago"), ("Fenway Park", "Boston"),
        ("the Liberty Bell", "Philadelphia"), ("the Alamo", "San Antonio"),
        ("the French Quarter", "New Orleans"), ("Graceland", "Memphis"), ("the CN Tower", "Toronto"),
        ("Stanley Park", "Vancouver"), ("the Kremlin", "Moscow"), ("Red Square", "Moscow"),
        ("Saint Basil's Cathedral", "Moscow"), ("the Hermitage Museum", "Saint Petersburg"),
        ("the Taj Mahal", "Agra"), ("the Gateway of India", "Mumbai"),
        ("India Gate", "New Delhi|Delhi"), ("the Brandenburg Gate", "Berlin"),
        ("the Reichstag building", "Berlin"), ("Checkpoint Charlie", "Berlin"),
        ("the Hofbräuhaus", "Munich"), ("the Acropolis", "Athens"), ("the Parthenon", "Athens"),
        ("the Sagrada Familia", "Barcelona"), ("Park Güell", "Barcelona"),
        ("the Alhambra", "Granada"), ("the Prado Museum", "Madrid"), ("the Burj Khalifa", "Dubai"),
        ("the Burj Al Arab", "Dubai"), ("the Petronas Towers", "Kuala Lumpur"),
        ("the Forbidden City", "Beijing"), ("Tiananmen Square", "Beijing"),
        ("the Temple of Heaven", "Beijing"), ("the Summer Palace", "Beijing"),
        ("the Bund", "Shanghai"), ("the Oriental Pearl Tower", "Shanghai"),
        ("the Blue Mosque", "Istanbul"), ("the Hagia Sophia", "Istanbul"),
        ("Topkapi Palace", "Istanbul"), ("the Grand Bazaar", "Istanbul"),
        ("Christ the Redeemer", "Rio de Janeiro"), ("Copacabana Beach", "Rio de Janeiro"),
        ("the Rijksmuseum", "Amsterdam"), ("the Anne Frank House", "Amsterdam"),
        ("Charles Bridge", "Prague"), ("the Little Mermaid statue", "Copenhagen"),
        ("Tivoli Gardens", "Copenhagen"), ("the Atomium", "Brussels"), ("Manneken Pis", "Brussels"),
        ("Schönbrunn Palace", "Vienna"), ("the Ponte Vecchio", "Florence"),
        ("the Uffizi Gallery", "Florence"), ("the Rialto Bridge", "Venice"),
        ("Saint Mark's Basilica", "Venice"), ("the Doge's Palace", "Venice"), ("La Scala", "Milan"),
        ("the Senso-ji temple", "Tokyo"), ("Shibuya Crossing", "Tokyo"),
        ("the Fushimi Inari shrine", "Kyoto"), ("Kinkaku-ji", "Kyoto"),
        ("Gyeongbokgung Palace", "Seoul"), ("the Grand Palace", "Bangkok"), ("Wat Arun", "Bangkok"),
        ("the Western Wall", "Jerusalem"), ("the Dome of the Rock", "Jerusalem"),
        ("Table Mountain", "Cape Town"),
        ("Bondi Beach", "Sydney"), ("the Potala Palace", "Lhasa"), ("the Kaaba", "Mecca"),
        ("the Terracotta Army", "Xi'an|Xian"),
    ),
)

CITY = Relation(
    name="city_country",
    description="city -> country it is in",
    main="{} is a city in the country of",
    paraphrases=(
        "{} is located in the country of",
        "The city of {} is in the country of",
        "The country where {} is located is",
        "{} is a large city in",
    ),
    facts=(
        ("Tokyo", "Japan"), ("Osaka", "Japan"), ("Kyoto", "Japan"), ("Yokohama", "Japan"),
        ("Hiroshima", "Japan"), ("Seoul", KOREA), ("Busan", KOREA), ("Beijing", "China"),
        ("Shanghai", "China"), ("Shenzhen", "China"), ("Guangzhou", "China"), ("Mumbai", "India"),
        ("Delhi", "India"), ("Bangalore", "India"), ("Kolkata", "India"), ("Chennai", "India"),
        ("Karachi", "Pakistan"), ("Lahore", "Pakistan"), ("Dhaka", "Bangladesh"),
        ("Bangkok", "Thailand"), ("Hanoi", "Vietnam"), ("Ho Chi Minh City", "Vietnam"),
        ("Jakarta", "Indonesia"), ("Manila", "the Philippines|Philippines"),
        ("Kuala Lumpur", "Malaysia"), ("Sydney", "Australia"), ("Melbourne", "Australia"),
        ("Brisbane", "Australia"), ("Auckland", "New Zealand"), ("Toronto", "Canada"),
        ("Montreal", "Canada"), ("Vancouver", "Canada"), ("Chicago", US), ("Los Angeles", US),
        ("Houston", US), ("Boston", US), ("Seattle", US), ("Miami", US), ("Guadalajara", "Mexico"),
        ("Monterrey", "Mexico"), ("Rio de Janeiro", "Brazil"), ("São Paulo", "Brazil"),
        ("Buenos Aires", "Argentina"), ("Lima", "Peru"), ("Bogotá", "Colombia"),
        ("Medellín", "Colombia"), ("Caracas", "Venezuela"), ("Havana", "Cuba"), ("London", UK),
        ("Manchester", UK), ("Liverpool", UK), ("Edinburgh", "Scotland|" + UK),
        ("Glasgow", "Scotland|" + UK), ("Dublin", "Ireland"), ("Paris", "France"),
        ("Marseille", "France"), ("Lyon", "France"), ("Toulouse", "France"), ("Berlin", "Germany"),
        ("Munich", "Germany"), ("Hamburg", "Germany"), ("Frankfurt", "Germany"),
        ("Cologne", "Germany"), ("Madrid", "Spain"), ("Barcelona", "Spain"), ("Seville", "Spain"),
        ("Lisbon", "Portugal"), ("Porto", "Portugal"), ("Rome", "Italy"), ("Milan", "Italy"),
        ("Naples", "Italy"), ("Venice", "Italy"), ("Florence", "Italy"), ("Turin", "Italy"),
        ("Amsterdam", "the Netherlands|Netherlands"), ("Rotterdam", "the Netherlands|Netherlands"),
        ("Brussels", "Belgium"), ("Antwerp", "Belgium"), ("Vienna", "Austria"),
        ("Salzburg", "Austria"), ("Zurich", "Switzerland"), ("Geneva", "Switzerland"),
        ("Prague", "the Czech Republic|Czech Republic|Czechia"), ("Warsaw", "Poland"),
        ("Krakow", "Poland"), ("Budapest", "Hungary"), ("Stockholm", "Sweden"),
        ("Gothenburg", "Sweden"), ("Oslo", "Norway"), ("Copenhagen", "Denmark"),
        ("Helsinki", "Finland"), ("Athens", "Greece"), ("Istanbul", "Turkey"), ("Ankara", "Turkey"),
        ("Moscow", "Russia"), ("Saint Petersburg", "Russia"), ("Kyiv", "Ukraine"),
        ("Cairo", "Egypt"), ("Casablanca", "Morocco"),
        ("Marrakesh", "Morocco"), ("Lagos", "Nigeria"), ("Nairobi", "Kenya"),
        ("Johannesburg", "South Africa"), ("Cape Town", "South Africa"),
        ("Addis Ababa", "Ethiopia"), ("Tehran", "Iran"), ("Baghdad", "Iraq"),
        ("Riyadh", "Saudi Arabia"), ("Mecca", "Saudi Arabia"),
        ("Dubai", "the United Arab Emirates|United Arab Emirates|the UAE"), ("Tel Aviv", "Israel"),
        ("Beirut", "Lebanon"), ("Damascus", "Syria"), ("Kabul", "Afghanistan"),
        ("Tashkent", "Uzbekistan"), ("Kathmandu", "Nepal"), ("Colombo", "Sri Lanka"),
        ("Reykjavik", "Iceland"),
    ),
)

CONTINENT = Relation(
    name="continent",
    description="country -> continent",
    main="{} is a country located in the continent of",
    paraphrases=(
        "{} is located on the continent of",
        "{} is a country in",
        "The continent where {} is located is",
        "{} is part of the continent of",
    ),
    facts=(
        *((c, "Europe") for c in (
            "France", "Germany", "Italy", "Spain", "Portugal", "the Netherlands", "Belgium",
            "Switzerland", "Austria", "Poland", "the Czech Republic", "Slovakia", "Hungary",
            "Romania", "Bulgaria", "Greece", "Serbia", "Croatia", "Slovenia", "Albania", "Denmark",
            "Norway", "Sweden", "Finland", "Iceland", "Ireland", "the United Kingdom", "Estonia",
            "Latvia", "Lithuania", "Belarus", "Ukraine", "Moldova", "Luxembourg", "Montenegro",
            "North Macedonia", "Bosnia and Herzegovina",
        )),
        *((c, "Asia") for c in (
            "Japan", "China", "India", "South Korea", "North Korea", "Vietnam", "Thailand",
            "Cambodia", "Laos", "Myanmar", "Malaysia", "Indonesia", "the Philippines", "Bangladesh",
            "Pakistan", "Nepal", "Bhutan", "Sri Lanka", "Mongolia", "Afghanistan", "Iran", "Iraq",
            "Saudi Arabia", "Syria", "Jordan", "Israel", "Lebanon", "Yemen", "Oman", "Qatar",
            "Uzbekistan", "Turkmenistan", "Tajikistan", "Kyrgyzstan",
        )),
        *((c, "Africa") for c in (
            "Egypt", "Nigeria", "Kenya", "Ethiopia", "Ghana", "Morocco", "Algeria", "Tunisia",
            "Libya", "Sudan", "Senegal", "Mali", "Niger", "Chad", "Cameroon", "Angola", "Zambia",
            "Zimbabwe", "Mozambique", "Madagascar", "Tanzania", "Uganda", "Rwanda", "Somalia",
            "Namibia", "Botswana", "South Africa",
        )),
        *((c, "North America") for c in (
            "Canada", "the United States", "Mexico", "Guatemala", "Honduras", "Nicaragua",
            "Costa Rica", "Panama", "Cuba", "Jamaica", "Haiti",
        )),
        *((c, "South America") for c in (
            "Brazil", "Argentina", "Chile", "Peru", "Colombia", "Venezuela", "Ecuador", "Bolivia",
            "Paraguay", "Uruguay", "Guyana", "Suriname",
        )),
        ("Australia", "Oceania|Australia"),
        *((c, "Oceania") for c in ("New Zealand", "Fiji", "Papua New Guinea", "Samoa", "Tonga")),
    ),
)

CARMAKER = Relation(
    name="carmaker",
    description="car maker -> country of origin",
    main="{} is a car manufacturer from",
    paraphrases=(
        "{} is a car company based in",
        "The car maker {} is headquartered in the country of",
        "The car brand {} comes from",
        "The automaker {} was founded in",
    ),
    facts=(
        ("Toyota", "Japan"), ("Honda", "Japan"), ("Nissan", "Japan"), ("Mazda", "Japan"),
        ("Subaru", "Japan"), ("Mitsubishi", "Japan"), ("Suzuki", "Japan"), ("Lexus", "Japan"),
        ("Isuzu", "Japan"), ("Daihatsu", "Japan"), ("Hyundai", KOREA), ("Kia", KOREA),
        ("Ford", US), ("Chevrolet", US), ("Cadillac", US), ("Chrysler", US), ("Dodge", US),
        ("Jeep", US), ("Tesla", US), ("Buick", US), ("Volkswagen", "Germany"), ("BMW", "Germany"),
        ("Mercedes-Benz", "Germany"), ("Audi", "Germany"), ("Porsche", "Germany"),
        ("Opel", "Germany"), ("Ferrari", "Italy"), ("Lamborghini", "Italy"), ("Fiat", "Italy"),
        ("Maserati", "Italy"), ("Alfa Romeo", "Italy"), ("Lancia", "Italy"), ("Renault", "France"),
        ("Peugeot", "France"), ("Citroën", "France"), ("Volvo", "Sweden"), ("Saab", "Sweden"),
        ("Koenigsegg", "Sweden"), ("Škoda", "the Czech Republic|Czech Republic|Czechia"),
        ("Jaguar", UK), ("Land Rover", UK), ("Aston Martin", UK), ("Rolls-Royce", UK),
        ("Bentley", UK), ("McLaren", UK), ("Lotus", UK), ("Tata Motors", "India"),
        ("Mahindra", "India"), ("BYD", "China"), ("Geely", "China"), ("SEAT", "Spain"),
        ("Dacia", "Romania"), ("Lada", "Russia"), ("Proton", "Malaysia"), ("Holden", "Australia"),
    ),
)

DISH = Relation(
    name="dish",
    description="dish -> country of origin",
    main="The dish {} originated in",
    paraphrases=(
        "The traditional dish {} comes from",
        "The food called {} is originally from",
        "The dish known as {} is a traditional food of",
        "The famous dish {} comes from the country of",
    ),
    facts=(
        ("sushi", "Japan"), ("sashimi", "Japan"), ("miso soup", "Japan"), ("udon", "Japan"),
        ("onigiri", "Japan"), ("kimchi", KOREA), ("bibimbap", KOREA), ("bulgogi", KOREA),
        ("tteokbokki", KOREA), ("pizza", "Italy"), ("lasagna", "Italy"), ("risotto", "Italy"),
        ("tiramisu", "Italy"), ("carbonara", "Italy"), ("bruschetta", "Italy"), ("cannoli", "Italy"),
        ("ossobuco", "Italy"), ("gelato", "Italy"), ("paella", "Spain"), ("gazpacho", "Spain"),
        ("tacos", "Mexico"), ("guacamole", "Mexico"), ("enchiladas", "Mexico"), ("mole", "Mexico"),
        ("ratatouille", "France"), ("crêpes", "France"), ("bouillabaisse", "France"),
        ("coq au vin", "France"), ("bratwurst", "Germany"), ("goulash", "Hungary"),
        ("pierogi", "Poland"), ("moussaka", "Greece"), ("souvlaki", "Greece"), ("tzatziki", "Greece"),
        ("pad thai", "Thailand"), ("tom yum", "Thailand"), ("green curry", "Thailand"),
        ("pho", "Vietnam"), ("banh mi", "Vietnam"), ("dim sum", "China"), ("Peking duck", "China"),
        ("kung pao chicken", "China"), ("mapo tofu", "China"), ("butter chicken", "India"),
        ("tandoori chicken", "India"), ("masala dosa", "India"), ("haggis", "Scotland"),
        ("fish and chips", UK), ("poutine", "Canada"), ("feijoada", "Brazil"), ("ceviche", "Peru"),
        ("tagine", "Morocco"), ("fondue", "Switzerland"), ("rösti", "Switzerland"),
        ("Wiener schnitzel", "Austria"), ("stroopwafels", "the Netherlands|Netherlands"),
        ("smørrebrød", "Denmark"), ("pelmeni", "Russia"), ("jerk chicken", "Jamaica"),
        ("pastel de nata", "Portugal"), ("injera", "Ethiopia"), ("bobotie", "South Africa"),
        ("nasi goreng", "Indonesia"), ("rendang", "Indonesia"),
        ("adobo", "the Philippines|Philippines"), ("pupusas", "El Salvador"),
    ),
)

STATE_CAPITAL = Relation(
    name="state_capital",
    description="US state -> state capital",
    main="The capital of the state of {} is",
    paraphrases=(
        "The state capital of {} is",
        "The capital city of the state of {} is",
        "{}'s state capital is",
        "The capital of the US state of {} is",
    ),
    facts=(
        ("Alabama", "Montgomery"), ("Alaska", "Juneau"), ("Arizona", "Phoenix"),
        ("Arkansas", "Little Rock"), ("California", "Sacramento"), ("Colorado", "Denver"),
        ("Connecticut", "Hartford"), ("Delaware", "Dover"), ("Florida", "Tallahassee"),
        ("Georgia", "Atlanta"), ("Hawaii", "Honolulu"), ("Idaho", "Boise"),
        ("Illinois", "Springfield"), ("Iowa", "Des Moines"), ("Kansas", "Topeka"),
        ("Kentucky", "Frankfort"), ("Louisiana", "Baton Rouge"), ("Maine", "Augusta"),
        ("Maryland", "Annapolis"), ("Massachusetts", "Boston"), ("Michigan", "Lansing"),
        ("Minnesota", "Saint Paul|St Paul"), ("Mississippi", "Jackson"),
        ("Missouri", "Jefferson City"), ("Montana", "Helena"), ("Nebraska", "Lincoln"),
        ("Nevada", "Carson City"), ("New Hampshire", "Concord"), ("New Jersey", "Trenton"),
        ("New Mexico", "Santa Fe"), ("New York", "Albany"), ("North Carolina", "Raleigh"),
        ("North Dakota", "Bismarck"), ("Ohio", "Columbus"), ("Oregon", "Salem"),
        ("Pennsylvania", "Harrisburg"), ("Rhode Island", "Providence"),
        ("South Carolina", "Columbia"), ("South Dakota", "Pierre"), ("Tennessee", "Nashville"),
        ("Texas", "Austin"), ("Utah", "Salt Lake City"), ("Vermont", "Montpelier"),
        ("Virginia", "Richmond"), ("Washington", "Olympia"), ("West Virginia", "Charleston"),
        ("Wisconsin", "Madison"), ("Wyoming", "Cheyenne"),
    ),
)

COMPANY = Relation(
    name="company",
    description="company -> country where it was founded",
    main="The company {} was founded in the country of",
    paraphrases=(
        "The company {} comes from the country of",
        "The home country of the company {} is",
        "{} is a company that was started in",
        "The business {} was first established in",
    ),
    facts=(
        ("Sony", "Japan"), ("Nintendo", "Japan"), ("Panasonic", "Japan"), ("Toshiba", "Japan"),
        ("Canon", "Japan"), ("Nikon", "Japan"), ("Hitachi", "Japan"), ("Yamaha", "Japan"),
        ("Uniqlo", "Japan"), ("Samsung", KOREA), ("LG", KOREA), ("Nokia", "Finland"),
        ("Rovio", "Finland"), ("Ericsson", "Sweden"), ("IKEA", "Sweden"), ("Spotify", "Sweden"),
        ("H&M", "Sweden"), ("Electrolux", "Sweden"), ("Lego", "Denmark"), ("Carlsberg", "Denmark"),
        ("Maersk", "Denmark"), ("Novo Nordisk", "Denmark"), ("Heineken", "the Netherlands|Netherlands"),
        ("Philips", "the Netherlands|Netherlands"), ("Siemens", "Germany"), ("Bosch", "Germany"),
        ("Adidas", "Germany"), ("Puma", "Germany"), ("SAP", "Germany"), ("Bayer", "Germany"),
        ("Lufthansa", "Germany"), ("Nestlé", "Switzerland"), ("Novartis", "Switzerland"),
        ("Swatch", "Switzerland"), ("Red Bull", "Austria"), ("Swarovski", "Austria"), ("Nike", US),
        ("Microsoft", US), ("Google", US), ("Apple", US), ("Amazon", US), ("Netflix", US),
        ("Coca-Cola", US), ("McDonald's", US), ("Walmart", US), ("Boeing", US), ("Intel", US),
        ("IBM", US), ("Disney", US), ("Starbucks", US), ("L'Oréal", "France"), ("Michelin", "France"),
        ("Chanel", "France"), ("Louis Vuitton", "France"), ("Hermès", "France"), ("Gucci", "Italy"),
        ("Prada", "Italy"), ("Barilla", "Italy"), ("Pirelli", "Italy"), ("Benetton", "Italy"),
        ("Ferrero", "Italy"), ("Huawei", "China"), ("Alibaba", "China"), ("Lenovo", "China"),
        ("Tencent", "China"), ("Xiaomi", "China"), ("Infosys", "India"), ("Wipro", "India"),
        ("Zara", "Spain"), ("Santander", "Spain"), ("Tesco", UK), ("Vodafone", UK),
        ("Gazprom", "Russia"), ("Petrobras", "Brazil"), ("Embraer", "Brazil"),
        ("BlackBerry", "Canada"), ("Bombardier", "Canada"), ("Qantas", "Australia"),
    ),
)

AUTHOR = Relation(
    name="author",
    description="literary work -> author",
    main="{} was written by",
    paraphrases=(
        "The author of {} is",
        "The writer who wrote {} is",
        "{} is a famous work by the writer",
        "The book {} was written by",
    ),
    facts=(
        ("Romeo and Juliet", "William Shakespeare|Shakespeare"),
        ("Hamlet", "William Shakespeare|Shakespeare"), ("Macbeth", "William Shakespeare|Shakespeare"),
        ("Othello", "William Shakespeare|Shakespeare"), ("King Lear", "William Shakespeare|Shakespeare"),
        ("Pride and Prejudice", "Jane Austen"), ("Sense and Sensibility", "Jane Austen"),
        ("Nineteen Eighty-Four", "George Orwell"), ("Animal Farm", "George Orwell"),
        ("War and Peace", "Leo Tolstoy|Tolstoy"), ("Anna Karenina", "Leo Tolstoy|Tolstoy"),
        ("Crime and Punishment", "Fyodor Dostoevsky|Dostoevsky"),
        ("The Brothers Karamazov", "Fyodor Dostoevsky|Dostoevsky"),
        ("Don Quixote", "Miguel de Cervantes|Cervantes"), ("The Odyssey", "Homer"),
        ("The Iliad", "Homer"), ("The Divine Comedy", "Dante Alighieri|Dante"),
        ("Moby-Dick", "Herman Melville"), ("To Kill a Mockingbird", "Harper Lee"),
        ("Frankenstein", "Mary Shelley"), ("Dracula", "Bram Stoker"),
        ("Oliver Twist", "Charles Dickens"), ("A Tale of Two Cities", "Charles Dickens"),
        ("Great Expectations", "Charles Dickens"), ("A Christmas Carol", "Charles Dickens"),
        ("David Copperfield", "Charles Dickens"), ("Les Misérables", "Victor Hugo"),
        ("The Hunchback of Notre-Dame", "Victor Hugo"),
        ("The Old Man and the Sea", "Ernest Hemingway"), ("A Farewell to Arms", "Ernest Hemingway"),
        ("For Whom the Bell Tolls", "Ernest Hemingway"),
        ("The Adventures of Tom Sawyer", "Mark Twain"), ("Adventures of Huckleberry Finn", "Mark Twain"),
        ("Jane Eyre", "Charlotte Brontë|Charlotte Bronte"),
        ("Wuthering Heights", "Emily Brontë|Emily Bronte"),
        ("The Picture of Dorian Gray", "Oscar Wilde"),
        ("One Hundred Years of Solitude", "Gabriel García Márquez|Gabriel Garcia Marquez"),
        ("The Little Prince", "Antoine de Saint-Exupéry|Antoine de Saint-Exupery"),
        ("The Metamorphosis", "Franz Kafka"), ("Faust", "Johann Wolfgang von Goethe|Goethe"),
        ("The Raven", "Edgar Allan Poe"), ("Brave New World", "Aldous Huxley"),
        ("Fahrenheit 451", "Ray Bradbury"), ("Of Mice and Men", "John Steinbeck"),
        ("The Grapes of Wrath", "John Steinbeck"), ("Lolita", "Vladimir Nabokov"),
        ("The Prince", "Niccolò Machiavelli|Niccolo Machiavelli|Machiavelli"),
        ("The Art of War", "Sun Tzu"), ("Alice's Adventures in Wonderland", "Lewis Carroll"),
        ("Treasure Island", "Robert Louis Stevenson"), ("The Jungle Book", "Rudyard Kipling"),
        ("Gulliver's Travels", "Jonathan Swift"), ("Robinson Crusoe", "Daniel Defoe"),
        ("The Canterbury Tales", "Geoffrey Chaucer"), ("Paradise Lost", "John Milton"),
        ("The Call of the Wild", "Jack London"), ("Little Women", "Louisa May Alcott"),
        ("Uncle Tom's Cabin", "Harriet Beecher Stowe"), ("The Scarlet Letter", "Nathaniel Hawthorne"),
        ("Madame Bovary", "Gustave Flaubert"), ("The Count of Monte Cristo", "Alexandre Dumas"),
        ("The Three Musketeers", "Alexandre Dumas"),
        ("Twenty Thousand Leagues Under the Seas", "Jules Verne"),
        ("Around the World in Eighty Days", "Jules Verne"),
        ("The Hound of the Baskervilles", "Arthur Conan Doyle"), ("The Da Vinci Code", "Dan Brown"),
        ("The Hunger Games", "Suzanne Collins"), ("The Alchemist", "Paulo Coelho"),
        ("The Kite Runner", "Khaled Hosseini"),
        ("Charlie and the Chocolate Factory", "Roald Dahl"), ("Things Fall Apart", "Chinua Achebe"),
        ("Dune", "Frank Herbert"), ("On the Origin of Species", "Charles Darwin"),
        ("A Brief History of Time", "Stephen Hawking"), ("The Republic", "Plato"),
        ("The Wealth of Nations", "Adam Smith"), ("The Tale of Genji", "Murasaki Shikibu"),
        ("The Godfather", "Mario Puzo"), ("The Shining", "Stephen King"),
        ("Gone with the Wind", "Margaret Mitchell"), ("Lord of the Flies", "William Golding"),
        ("Catch-22", "Joseph Heller"), ("Slaughterhouse-Five", "Kurt Vonnegut"),
        ("The Handmaid's Tale", "Margaret Atwood"), ("Waiting for Godot", "Samuel Beckett"),
        ("Death of a Salesman", "Arthur Miller"), ("Pygmalion", "George Bernard Shaw"),
    ),
)

TEAM = Relation(
    name="team",
    description="sports team (short name) -> home city",
    main="{} are a sports team based in the city of",
    paraphrases=(
        "{} play their home games in",
        "The home city of {} is",
        "The sports team known as {} is based in",
        "{} are a professional team from the city of",
    ),
    facts=(
        # basketball (NBA)
        ("the Lakers", "Los Angeles"), ("the Clippers", "Los Angeles"), ("the Celtics", "Boston"),
        ("the Knicks", "New York|New York City"), ("the Bulls", "Chicago"), ("the Heat", "Miami"),
        ("the Spurs", "San Antonio"), ("the Mavericks", "Dallas"), ("the Rockets", "Houston"),
        ("the Pistons", "Detroit"), ("the 76ers", "Philadelphia"), ("the Raptors", "Toronto"),
        ("the Suns", "Phoenix"), ("the Nuggets", "Denver"), ("the Bucks", "Milwaukee"),
        ("the Cavaliers", "Cleveland"), ("the Hawks", "Atlanta"), ("the Trail Blazers", "Portland"),
        ("the Timberwolves", "Minneapolis"), ("the Grizzlies", "Memphis"),
        ("the Pelicans", "New Orleans"), ("the Magic", "Orlando"), ("the Hornets", "Charlotte"),
        ("the Pacers", "Indianapolis"), ("the Wizards", "Washington"),
        # American football (NFL)
        ("the Packers", "Green Bay"), ("the Steelers", "Pittsburgh"), ("the Cowboys", "Dallas"),
        ("the 49ers", "San Francisco"), ("the Bears", "Chicago"), ("the Eagles", "Philadelphia"),
        ("the Broncos", "Denver"), ("the Seahawks", "Seattle"), ("the Dolphins", "Miami"),
        ("the Saints", "New Orleans"), ("the Ravens", "Baltimore"), ("the Chiefs", "Kansas City"),
        ("the Lions", "Detroit"), ("the Falcons", "Atlanta"), ("the Colts", "Indianapolis"),
        ("the Browns", "Cleveland"), ("the Bengals", "Cincinnati"), ("the Texans", "Houston"),
        ("the Buccaneers", "Tampa|Tampa Bay"), ("the Titans", "Nashville"), ("the Bills", "Buffalo"),
        ("the Jaguars", "Jacksonville"),
        # baseball (MLB)
        ("the Yankees", "New York|New York City"), ("the Mets", "New York|New York City"),
        ("the Red Sox", "Boston"), ("the Cubs", "Chicago"), ("the White Sox", "Chicago"),
        ("the Dodgers", "Los Angeles"), ("the Braves", "Atlanta"), ("the Astros", "Houston"),
        ("the Phillies", "Philadelphia"), ("the Mariners", "Seattle"), ("the Orioles", "Baltimore"),
        ("the Tigers", "Detroit"), ("the Brewers", "Milwaukee"), ("the Pirates", "Pittsburgh"),
        ("the Reds", "Cincinnati"), ("the Padres", "San Diego"), ("the Marlins", "Miami"),
        ("the Blue Jays", "Toronto"), ("the Royals", "Kansas City"),
        # ice hockey (NHL)
        ("the Maple Leafs", "Toronto"), ("the Canadiens", "Montreal"), ("the Bruins", "Boston"),
        ("the Blackhawks", "Chicago"), ("the Red Wings", "Detroit"), ("the Penguins", "Pittsburgh"),
        ("the Flyers", "Philadelphia"), ("the Oilers", "Edmonton"), ("the Flames", "Calgary"),
        ("the Canucks", "Vancouver"), ("the Senators", "Ottawa"),
        # football (soccer)
        ("Arsenal", "London"), ("Chelsea", "London"), ("Tottenham Hotspur", "London"),
        ("Juventus", "Turin"), ("Ajax", "Amsterdam"), ("PSV", "Eindhoven"),
        ("Feyenoord", "Rotterdam"), ("Benfica", "Lisbon"), ("Celtic", "Glasgow"),
        ("Galatasaray", "Istanbul"), ("Fenerbahçe", "Istanbul"), ("Boca Juniors", "Buenos Aires"),
        ("River Plate", "Buenos Aires"), ("Flamengo", "Rio de Janeiro"), ("Lazio", "Rome"),
        ("Fiorentina", "Florence"), ("Real Betis", "Seville"), ("Anderlecht", "Brussels"),
    ),
)

SPORT = Relation(
    name="sport",
    description="athlete -> sport",
    main="{} is a famous athlete in the sport of",
    paraphrases=(
        "{} became famous in the sport of",
        "{} is best known for playing",
        "{} competed professionally in the sport of",
        "The sport that made {} famous is",
    ),
    case_variants=True,
    facts=(
        *((p, "basketball") for p in (
            "Michael Jordan", "LeBron James", "Kobe Bryant", "Shaquille O'Neal", "Stephen Curry",
            "Magic Johnson", "Larry Bird", "Kareem Abdul-Jabbar", "Dirk Nowitzki", "Yao Ming",
            "Kevin Durant", "Tim Duncan",
        )),
        *((p, "tennis") for p in (
            "Roger Federer", "Serena Williams", "Rafael Nadal", "Novak Djokovic", "Andre Agassi",
            "Pete Sampras", "Steffi Graf", "Maria Sharapova", "Venus Williams", "Björn Borg",
            "Andy Murray",
        )),
        *((p, "golf") for p in (
            "Tiger Woods", "Jack Nicklaus", "Arnold Palmer", "Phil Mickelson", "Rory McIlroy",
        )),
        *((p, "football|soccer") for p in (
            "Lionel Messi", "Cristiano Ronaldo", "Pelé", "Diego Maradona", "David Beckham",
            "Zinedine Zidane", "Neymar", "Johan Cruyff", "Kylian Mbappé", "Wayne Rooney",
            "Thierry Henry",
        )),
        *((p, "baseball") for p in (
            "Babe Ruth", "Derek Jeter", "Jackie Robinson", "Hank Aaron", "Lou Gehrig",
            "Shohei Ohtani",
        )),
        *((p, "ice hockey|hockey") for p in (
            "Wayne Gretzky", "Sidney Crosby", "Mario Lemieux", "Alexander Ovechkin",
        )),
        *((p, "boxing") for p in (
            "Muhammad Ali", "Mike Tyson", "Floyd Mayweather", "Manny Pacquiao", "Joe Frazier",
        )),
        *((p, "swimming") for p in ("Michael Phelps", "Mark Spitz", "Katie Ledecky", "Ian Thorpe")),
        *((p, "cricket") for p in (
            "Sachin Tendulkar", "Virat Kohli", "Don Bradman", "Brian Lara", "Shane Warne",
        )),
        *((p, "chess") for p in (
            "Magnus Carlsen", "Garry Kasparov", "Bobby Fischer", "Anatoly Karpov",
        )),
        *((p, "American football|football") for p in (
            "Tom Brady", "Peyton Manning", "Joe Montana", "Jerry Rice",
        )),
        *((p, "Formula One|Formula 1|motor racing") for p in (
            "Lewis Hamilton", "Michael Schumacher", "Ayrton Senna", "Sebastian Vettel",
        )),
        *((p, "gymnastics") for p in ("Simone Biles", "Nadia Comăneci")),
        *((p, "cycling") for p in ("Eddy Merckx", "Lance Armstrong")),
    ),
)

RELATIONS: tuple[Relation, ...] = (
    CAPITAL, LANGUAGE, CURRENCY, ELEMENT, LANDMARK, CITY, CONTINENT, CARMAKER, DISH,
    STATE_CAPITAL, COMPANY, AUTHOR, TEAM, SPORT,
)

def object_table() -> tuple[dict[str, list[str]], dict[str, dict[str, list[str]]]]:
    """Per relation: its objects (canonical spellings, candidate order) and each one's spellings."""
    objects: dict[str, list[str]] = {}
    spellings: dict[str, dict[str, list[str]]] = {}
    for rel in RELATIONS:
        objs: list[str] = []
        table: dict[str, list[str]] = {}
        for _, spec in rel.facts:
            aliases = spec.split("|")
            if aliases[0] not in table:
                objs.append(aliases[0])
                table[aliases[0]] = aliases
        objects[rel.name] = objs
        spellings[rel.name] = table
    return objects, spellings


def order_key(seed: int, subject: str) -> str:
    """A seeded, stable sort key (no dependence on Python's hash randomization)."""
    return hashlib.sha256(f"{seed}:{subject}".encode()).hexdigest()


def reserve_per_relation(by_rel: dict[str, list[str]], seed: int, share: float, minimum: int) -> set[str]:
    """Per relation, at least ``max(minimum, round(share * n))`` subjects, in seeded order (kept out of edits)."""
    reserved: set[str] = set()
    for rel in RELATIONS:
        subjects = by_rel.get(rel.name, [])
        want = max(minimum, round(share * len(subjects)))
        have = sum(s in reserved for s in subjects)
        for s in sorted(subjects, key=lambda s: order_key(seed, s)):
            if have >= want:
                break
            if s not in reserved:
                reserved.add(s)
                have += 1
    return reserved
