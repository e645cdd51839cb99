"""Hand-written reference passages for ``build_reference_text.py`` (written for editkit; CC0).

Short, self-contained English passages (1-3 sentences) on everyday topics.
Named places, countries, companies and famous people are avoided on purpose,
so that the passages do not ask about the facts the edit sets change.
"""

from __future__ import annotations

SCIENCE = (
    "Water boils at a lower temperature on a high mountain because the air pressure is lower there. "
    "That is why pasta takes longer to cook at altitude, even though the water looks just as hot.",
    "Plants take in carbon dioxide through tiny pores on their leaves. Using the energy of sunlight, "
    "they turn it into sugar and release the leftover gas into the air we breathe.",
    "Sound needs something to travel through, such as air, water or a solid wall. "
    "In the near-perfect vacuum of space, two astronauts could not hear each other shout without a radio.",
    "A rainbow appears when sunlight enters raindrops, bends, reflects off the back of each drop and "
    "bends again on the way out. Each color leaves at a slightly different angle, so the light spreads into a band.",
    "The human heart beats roughly one hundred thousand times a day. Over a lifetime it pumps enough "
    "blood to fill several large swimming pools.",
    "Vaccines train the immune system by showing it a harmless piece or copy of a germ. "
    "If the real germ arrives later, the body recognizes it and fights back much faster.",
    "Ice floats because water expands as it freezes, which makes the solid less dense than the liquid. "
    "Lakes therefore freeze from the top down, and fish survive the winter in the water below.",
    "Earthquakes happen when rocks along a fault suddenly slip past each other. "
    "The stored energy travels outward as waves that can be measured on the other side of the planet.",
    "Bees communicate the location of flowers with a waggle dance. The angle of the dance shows the "
    "direction relative to the sun, and its length hints at the distance.",
    "A magnet has two poles, and cutting it in half does not separate them. "
    "Each piece simply becomes a smaller magnet with its own north and south ends.",
    "The moon does not make its own light; it reflects light from the sun. "
    "Its phases change as we see more or less of the half that is lit.",
    "Bacteria can double in number in as little as twenty minutes when conditions are right. "
    "That is why food left on a warm counter can spoil within a single afternoon.",
    "Friction is the force that resists one surface sliding over another. "
    "Without it, we could not walk, tie a knot or keep a car on the road.",
    "Light from distant stars can take thousands of years to reach us. "
    "When you look at the night sky, you are seeing the stars as they were long ago.",
    "Salt lowers the freezing point of water, which is why it is spread on icy roads in winter. "
    "The same trick helps old-fashioned ice cream makers reach temperatures below zero.",
    "Most of an atom is empty space. If the nucleus were the size of a marble in the middle of a "
    "stadium, the electrons would be buzzing around somewhere near the outer seats.",
    "Tides are caused mainly by the pull of the moon on the oceans. "
    "Many coasts see two high tides and two low tides roughly every day.",
    "Octopuses have three hearts and blue blood. They can also change the color and texture of their "
    "skin in a fraction of a second to hide from predators.",
    "A fever is one of the ways the body fights infection. A slightly higher temperature makes it "
    "harder for many germs to multiply and speeds up parts of the immune response.",
    "In a simple circuit, electricity flows from the battery, through the bulb and back again. "
    "Break the loop anywhere, for example by opening a switch, and the light goes out.",
    "Seeds can stay dormant for years, waiting for the right mix of warmth, water and light. "
    "Some desert flowers bloom only after a rare heavy rain.",
    "Thunder is the sound of air expanding rapidly after being heated by lightning. "
    "Counting the seconds between the flash and the rumble gives a rough idea of how far away the storm is.",
    "Our eyes have more receptors for brightness than for color. "
    "That is why colors fade and the world looks gray when we walk outside on a moonlit night.",
    "Evaporation cools things down. When sweat dries on your skin, it carries heat away with it, "
    "which is why a breeze feels so pleasant on a hot day.",
    "Fossils form when the remains of living things are buried quickly and slowly replaced by minerals. "
    "Most animals that ever lived left no fossil behind at all.",
    "The speed of light is about three hundred thousand kilometers per second. "
    "Even so, a radio signal to a distant spacecraft can take hours to arrive.",
    "Some animals, such as bats and dolphins, find their way by echolocation. "
    "They send out sounds and listen to the echoes to build a picture of their surroundings.",
    "Muscles grow stronger when they are asked to work a little harder than usual and then given time "
    "to rest. The repair after exercise is where most of the progress happens.",
    "A chemical reaction rearranges atoms but does not create or destroy them. "
    "If you burn a candle in a sealed jar, the total mass inside stays the same.",
    "Clouds are made of countless tiny droplets of water or crystals of ice. "
    "A single fluffy cloud can weigh as much as a herd of elephants, spread over a huge volume.",
)

HISTORY = (
    "Before mechanical clocks, many towns kept time with sundials and church bells. "
    "Each town set noon by its own sun, so neighboring places could disagree by several minutes.",
    "The printing press made books far cheaper to produce. Ideas that once spread through a handful of "
    "handwritten copies could suddenly reach thousands of readers within a few years.",
    "Early sailors navigated by the stars, the sun and careful guesses about their speed. "
    "Measuring longitude at sea remained a serious problem until accurate clocks were built.",
    "In many ancient cities, public baths were places to meet friends and do business as well as to wash. "
    "Some had hot rooms, cold pools, gardens and even small libraries.",
    "The first photographs required the subject to sit still for several minutes. "
    "That is one reason people in very old portraits rarely smile.",
    "Canals were the highways of the early industrial age. Horses walked along towpaths, pulling heavy "
    "barges of coal and grain at a slow but steady pace.",
    "Medieval castles were built on hills and near rivers whenever possible. "
    "High ground made attackers easier to see, and water made them harder to reach.",
    "Before refrigerators, families preserved food by drying, salting, smoking or pickling it. "
    "Blocks of ice cut from frozen lakes were stored in straw to last into the summer.",
    "The telegraph allowed messages to cross a continent in minutes instead of weeks. "
    "Operators tapped out letters in short and long pulses that trained listeners could read by ear.",
    "Paper money began as receipts for coins or goods kept in storage. "
    "Over time people trusted the paper itself, and it became a currency of its own.",
    "Many of the oldest written records are lists of grain, cattle and taxes. "
    "Writing seems to have started as a way to keep accounts rather than to tell stories.",
    "Lighthouses once depended on keepers who climbed the tower every evening to light the lamp. "
    "Today most of them run automatically, and the keepers' cottages have become museums or guest houses.",
    "The bicycle changed daily life in the late nineteenth century. "
    "It gave ordinary people, and many women in particular, a cheap way to travel on their own.",
    "Ancient builders moved enormous stones with ramps, levers, sledges and a great deal of organized labor. "
    "Experiments show that wetting the sand in front of a sledge makes it much easier to pull.",
    "Street lighting transformed city life. Once gas lamps lined the main roads, shops stayed open later "
    "and people felt safer walking home after dark.",
    "For centuries, scribes copied books by hand in quiet rooms lit by windows and candles. "
    "A single large volume could take many months to finish.",
    "The first public libraries were often funded by local donors who believed that reading should not "
    "be a privilege of the rich.",
    "Railways forced towns to agree on standard time. Timetables were impossible to print when every "
    "station kept its own local hour.",
    "In the age of sail, a letter to a relative overseas could take months to arrive, "
    "and the reply just as long. Families learned patience, and news was always old.",
    "Early radio broadcasts were mostly music and news read aloud. Families gathered around a single "
    "set in the evening, much as later generations gathered around the television.",
    "Ancient astronomers tracked the movements of the sun, moon and planets with simple instruments. "
    "Their careful records helped farmers decide when to plant and harvest.",
    "The spread of clean drinking water and sewers did more for public health in the nineteenth century "
    "than almost any medicine of the time.",
    "Knights' armor was lighter and more flexible than many people imagine. "
    "A trained fighter could run, climb and even mount a horse without help.",
    "Windmills were used not only to grind grain but also to pump water and saw timber. "
    "In low-lying regions they kept whole farming districts from flooding.",
    "Before the typewriter, clerks in busy offices wrote every letter and record by hand, "
    "and good handwriting was a valuable professional skill.",
)

DAILY_LIFE = (
    "I always mean to go to bed early, but then I start one more chapter, and suddenly it is past midnight. "
    "Tomorrow, I tell myself, will be different.",
    "The bus was late again this morning, so I walked the last part of the way. "
    "It turned out to be the nicest part of my day.",
    "Our neighbor waters her tomatoes every evening at exactly seven o'clock. "
    "You could almost set your watch by the sound of the hose.",
    "Laundry day in our house means every chair is covered with drying shirts. "
    "The cat considers this a personal gift and chooses the warmest sweater to sleep on.",
    "On Sunday mornings we make pancakes and argue about whether syrup or jam is the better topping. "
    "Nobody has ever changed their mind.",
    "I finally cleaned out the kitchen drawer that collects everything: batteries, rubber bands, "
    "old keys and takeaway menus from restaurants that closed years ago.",
    "My grandmother keeps a notebook of birthdays and sends a handwritten card to every member of the family. "
    "She has not missed one in thirty years.",
    "The power went out during the storm, so we lit candles and played cards at the kitchen table. "
    "The children were almost disappointed when the lights came back on.",
    "Every Friday after work, a small group of us walks to the park and shares whatever snacks we brought. "
    "It started as a one-time thing and became a tradition.",
    "The new coffee machine at the office makes twelve kinds of drinks. "
    "Most people still press the same button every morning.",
    "I tried to fix the dripping tap myself and ended up with water on the ceiling of the room below. "
    "Next time I will call a plumber first.",
    "My brother plants sunflowers along the fence every spring. "
    "By August they are taller than he is, and the birds arrive to eat the seeds.",
    "We moved to a smaller apartment last year. It has less space, but the light in the mornings is "
    "wonderful and the bakery downstairs opens at six.",
    "Getting three children out of the door on a school morning requires a plan, two alarms and at least "
    "one lost shoe.",
    "The library in our town has a shelf where people leave books they have finished for others to take. "
    "I have found some of my favorite novels there.",
    "I keep a small notebook by the bed to write down ideas before I fall asleep. "
    "In the morning, half of them make no sense at all.",
    "Our dog knows the sound of the car from two streets away and waits by the door long before we "
    "turn into the driveway.",
    "The queue at the post office moved so slowly that the man in front of me started telling his whole "
    "life story. By the time I reached the counter, I knew his grandchildren's names.",
    "After years of buying bread, I finally learned to bake my own. "
    "The first loaf was as heavy as a brick, but the third one was actually good.",
    "When the first snow falls, the whole street comes outside. Adults pretend to shovel while the "
    "children build lopsided snowmen on every front lawn.",
    "My phone reminds me to drink water, stand up and go to sleep. "
    "I ignore all three reminders with remarkable consistency.",
    "We have a rule at dinner: no phones on the table. "
    "The conversations are longer now, and we argue less about who has to do the dishes.",
    "Moving house is mostly a matter of finding out how many things you own that you forgot existed. "
    "We filled four boxes with cables alone.",
    "Each autumn we rake the leaves into a huge pile, and each autumn the children jump into it "
    "before we can bag a single one.",
    "The washing machine has started making a noise like a small airplane taking off. "
    "We are pretending not to hear it until the end of the month.",
    "I wrote a shopping list, left it on the kitchen table and then bought everything except the three "
    "things I actually needed.",
    "Our street holds a small market every Saturday. People sell vegetables, old records, "
    "homemade jam and the occasional piece of furniture nobody can fit into a car.",
    "The train was crowded, so I stood by the window and watched the fields go by. "
    "Sometimes a slow journey is the only quiet hour in the day.",
    "She learned to knit during a long winter and now gives scarves to everyone she knows. "
    "Some of them are even the right length.",
    "Every year we promise to start our holiday shopping early, "
    "and every year we end up in a crowded shop two days before the celebration.",
)

COOKING = (
    "To make a simple tomato sauce, soften a chopped onion in olive oil, add garlic for a minute, "
    "then pour in crushed tomatoes and simmer for twenty minutes. Season with salt and a pinch of sugar.",
    "Rice cooks more evenly if you rinse it first to remove the loose starch. "
    "Use about one and a half cups of water for every cup of rice, cover the pot and keep the heat low.",
    "A good omelet needs a hot pan, a little butter and a quick hand. "
    "Stir the eggs gently until they are just set, add the filling and fold it over before it browns.",
    "Let meat rest for a few minutes after cooking. The juices settle back into the fibers, "
    "and the slices stay moist instead of flooding the cutting board.",
    "When baking cookies, chill the dough for half an hour before shaping it. "
    "Cold dough spreads less in the oven, so the cookies come out thicker and chewier.",
    "Roasted vegetables taste best when they have room on the tray. "
    "Crowded pieces steam instead of browning, so use two trays if you need to.",
    "A squeeze of lemon at the end can brighten almost any soup or stew. "
    "Acid wakes up flavors that have gone flat after long cooking.",
    "To peel garlic quickly, press each clove with the flat side of a knife. "
    "The skin cracks and slides off easily.",
    "Bread dough is ready for the oven when a gentle poke leaves a dent that slowly springs back. "
    "If the dent disappears at once, give it a little more time.",
    "Soak dried beans overnight in plenty of cold water, then drain them and simmer in fresh water "
    "until tender. Add salt near the end so the skins stay soft.",
    "A basic vinaigrette is three parts oil to one part vinegar, with a spoonful of mustard to hold "
    "it together. Shake it in a jar and taste before adding salt.",
    "Pancake batter should rest for a few minutes before cooking. "
    "Small lumps are fine; stirring too much makes the pancakes tough.",
    "When frying onions slowly, be patient. After about forty minutes over low heat they turn soft, "
    "golden and sweet, perfect for soups and sandwiches.",
    "To keep herbs fresh, trim the stems and stand them in a glass of water like flowers. "
    "Basil prefers to stay on the counter, while parsley lasts longer in the fridge.",
    "Toast spices in a dry pan for a minute before grinding them. "
    "The heat releases their oils and makes the whole kitchen smell wonderful.",
    "Pasta water is salty and full of starch, so save a cup before you drain the pot. "
    "A splash of it helps the sauce cling to the noodles.",
    "For a quick breakfast, mix oats, milk and a spoonful of yogurt in a jar the night before. "
    "In the morning, add fruit and a little honey.",
    "Fish is cooked when the flesh turns opaque and flakes easily with a fork. "
    "It only takes a minute or two too long for it to become dry.",
    "Cakes rise better when the butter, eggs and milk are at room temperature. "
    "Cold ingredients do not blend smoothly and can leave the batter heavy.",
    "A heavy pot with a lid is the best tool for a slow stew. "
    "Brown the meat in batches first, then add the liquid and let it barely bubble for a couple of hours.",
    "Sharp knives are safer than dull ones, because they cut where you aim instead of slipping. "
    "A few strokes on a honing steel before each use keeps the edge straight.",
    "To make a quick soup, sweat some vegetables in butter, cover them with stock and cook until soft. "
    "Blend until smooth and finish with a little cream or a handful of herbs.",
    "Caramel goes from golden to burnt in seconds. "
    "Watch the pan closely and take it off the heat a moment before you think it is ready.",
    "Leftover rice makes the best fried rice, because the grains are dry and separate. "
    "Fresh rice tends to clump and turn mushy in the pan.",
    "Season food in small steps and taste as you go. "
    "It is easy to add more salt and very hard to take it away.",
)

SPORTS = (
    "The home team scored in the final minute, and the crowd was on its feet before the ball even "
    "crossed the line. Nobody left the stadium for a long time after the whistle.",
    "Marathon runners often talk about hitting the wall at around thirty kilometers. "
    "The body runs low on stored energy, and every step suddenly feels heavy.",
    "Our local swimming pool opens at six in the morning for lane swimming. "
    "The early crowd is small, serious and almost completely silent.",
    "In tennis, a player must win by two clear points in a game. "
    "A close game can go back and forth between deuce and advantage for a long time.",
    "The youth football team trains twice a week on a muddy field behind the school. "
    "Their coach cares more about passing and teamwork than about the final score.",
    "Cyclists in a long race ride close together in a group to save energy. "
    "The riders at the front take the wind while the others rest behind them.",
    "Good stretching before a game is less about touching your toes and more about warming up the "
    "muscles with gentle movement.",
    "The referee's decision sparked a heated argument, but the replay showed that she had been right. "
    "The players shook hands at the end anyway.",
    "Climbing indoors is a good way to learn the basics. "
    "The routes are marked by color, and a soft floor or rope system makes falls safe.",
    "The match was delayed by rain for almost an hour. "
    "When play resumed, the visiting side looked far sharper than before the break.",
    "A basketball team can have the best shooter in the league and still lose if nobody plays defense. "
    "Games are often decided by the unglamorous work.",
    "After years of coming second, the village rowing club finally won the regional race. "
    "The crew celebrated by jumping into the river, still wearing their medals.",
    "Skiing downhill looks effortless when done well, but it demands strong legs and constant balance. "
    "Beginners spend most of the first day learning how to stop.",
    "In baseball, a batter who gets a hit three times out of ten is considered very good. "
    "Failure is built into the game.",
    "The table tennis club meets in a school hall on Thursday evenings. "
    "Players range from nervous beginners to a retired teacher who has not lost a game in years.",
    "Golf courses are designed so that each hole offers a choice between a safe route and a risky shortcut. "
    "The best players know when to take the gamble.",
    "Many athletes keep a training diary, noting sleep, meals and how each session felt. "
    "Over months, patterns appear that a coach could never see in a single day.",
    "The final lap of the race was a sprint, and the two leaders crossed the line so close together "
    "that the judges had to look at the photograph.",
    "Volleyball on the beach is harder than it looks, because the soft sand takes the spring out of every jump.",
    "Young gymnasts practice the same move hundreds of times before performing it in competition. "
    "Confidence, they say, comes from repetition.",
)

TECHNOLOGY = (
    "A strong password is long and hard to guess. A short sentence made of unrelated words is easier to "
    "remember than a jumble of symbols and is often just as secure.",
    "Backing up your files is boring until the day your laptop stops working. "
    "Keep at least one copy somewhere other than the computer itself.",
    "Search engines rank pages by many signals, including how well the text matches the question and "
    "how many other pages link to it.",
    "A computer's memory holds the programs and data it is working on right now, while the disk keeps "
    "files when the power is off.",
    "Software updates often fix security holes that attackers already know about. "
    "Installing them promptly is one of the simplest ways to stay safe online.",
    "Email scams often create a sense of urgency, asking you to act before you think. "
    "A message that demands immediate payment deserves a second look.",
    "Wireless networks slow down when many devices share the same channel. "
    "Moving the router to a central, open spot can improve the signal throughout a home.",
    "Programming is mostly about breaking a large problem into small steps a computer can follow. "
    "The hardest part is usually deciding what the steps should be.",
    "A spreadsheet can add a column of numbers instantly, but it will also repeat a mistake instantly. "
    "Checking the formulas matters as much as checking the data.",
    "Rechargeable batteries slowly lose capacity with every cycle. "
    "Keeping a phone between about a fifth and four fifths full can help its battery last longer.",
    "Before smartphones, people carried separate devices for music, photos, maps and calls. "
    "Today a single slab of glass in a pocket does all of that and more.",
    "Machine learning systems learn patterns from examples rather than following hand-written rules. "
    "Their answers are only as good as the data they were trained on.",
    "Two-factor authentication asks for something you know, such as a password, and something you have, "
    "such as a code from your phone. Stealing one is not enough.",
    "3D printers build objects layer by layer from melted plastic or resin. "
    "Hobbyists use them to make replacement parts, toys and tools.",
    "The first computers filled entire rooms and needed teams of people to operate them. "
    "A cheap watch today has more computing power than many of them.",
    "Cloud storage means your files live on someone else's servers. "
    "It is convenient, but it is worth knowing who holds your data and how to get it back.",
    "A good user manual explains not just which buttons to press but why. "
    "People remember steps better when they understand what each one does.",
    "Electric cars have fewer moving parts than cars with combustion engines. "
    "They need less routine maintenance, although their batteries are expensive to replace.",
    "Version control lets programmers record every change to their code. "
    "If something breaks, they can see exactly what changed and roll it back.",
    "Noise-canceling headphones listen to the sound around you and play the opposite wave. "
    "The two cancel out, leaving a surprising quiet.",
    "Digital photos store more than the picture. They can also record the date, the camera settings "
    "and sometimes the exact place where the photo was taken.",
    "Many websites use cookies to remember who you are between visits. "
    "Some are useful, like keeping you logged in, while others track what you read.",
    "Robots in warehouses carry shelves to human workers instead of workers walking to the shelves. "
    "The result is faster packing and far fewer steps per shift.",
    "A bug in one line of code once caused a rocket to fail shortly after launch. "
    "Engineers still tell the story as a lesson in careful testing.",
    "Solar panels turn sunlight directly into electricity. "
    "They still work on cloudy days, only with less power than in bright sunshine.",
)

NATURE = (
    "Rivers carve valleys slowly, grain by grain, over thousands of years. "
    "A single heavy flood, though, can move more rock in a day than a calm decade.",
    "Deserts are not always hot. Some of the driest places on Earth are cold, "
    "windy plains where almost no rain or snow falls in a year.",
    "Coral reefs are built by tiny animals that live together in huge colonies. "
    "They cover a small part of the ocean floor but shelter a large share of sea life.",
    "Mountains often have a wet side and a dry side. Air rises over the peaks, cools and drops its rain, "
    "leaving little moisture for the land beyond.",
    "Wetlands act like giant sponges, soaking up water during storms and releasing it slowly. "
    "They also filter pollution and provide homes for many birds.",
    "Volcanic soil is often very fertile, which is why farmers live and work on the slopes of active "
    "volcanoes despite the danger.",
    "Forests create their own weather in a small way. Trees release water vapor through their leaves, "
    "which helps form clouds and keeps the air cool and damp.",
    "Glaciers are rivers of ice that flow downhill under their own weight. "
    "Some move only a few centimeters a day, others several meters.",
    "Many birds migrate thousands of kilometers every year, using the sun, the stars and the Earth's "
    "magnetic field to find their way.",
    "Sand dunes move with the wind. Grains blow up the gentle side and tumble down the steep side, "
    "so the whole dune creeps forward over the years.",
    "Islands far from any continent often have animals found nowhere else. "
    "Species that arrive by chance evolve in isolation for millions of years.",
    "Caves form when slightly acidic rainwater dissolves limestone. "
    "Dripping water leaves behind minerals that slowly grow into stalactites and stalagmites.",
    "Grasslands cover huge areas of the world. Fires, grazing animals and dry seasons stop trees from "
    "taking over, and the grasses grow back quickly from their roots.",
    "In autumn, trees stop making the green pigment in their leaves. "
    "The yellows and oranges that were hidden underneath finally show through.",
    "Lakes in cold regions can be covered by ice for half the year. "
    "Beneath it, life slows down but does not stop.",
    "Rainforests receive rain almost every day. The tallest trees form a dense roof, "
    "and very little sunlight reaches the forest floor.",
    "Waterfalls slowly move upstream. The falling water wears away the softer rock at the base, "
    "until the ledge above collapses and the fall retreats a little.",
    "Wolves live and hunt in family groups called packs. "
    "Each member has a role, and young wolves learn by following the adults for years.",
    "Along rocky coasts, tide pools hold small worlds of crabs, snails, anemones and tiny fish. "
    "They must survive both crashing waves and hours in the open air.",
    "Ocean currents carry warm water from the tropics toward the poles and cold water back again. "
    "They shape the climate of coastlines thousands of kilometers away.",
    "Owls can turn their heads much farther than humans can. "
    "Their eyes are fixed in place, so the whole head has to move to look around.",
    "Soil is alive. A single handful contains billions of bacteria, fungi and tiny animals "
    "that break down dead plants and feed new ones.",
    "After a forest fire, the first green shoots often appear within weeks. "
    "Some pine cones only open and release their seeds after being heated by flames.",
    "Elephants can hear low rumbles from other elephants many kilometers away. "
    "Part of the sound travels through the ground and is felt through their feet.",
    "Fog forms when moist air cools to the point where its water vapor condenses into tiny droplets. "
    "It often settles in valleys on calm, clear nights.",
)

DIALOGUE = (
    "\"Did you remember to buy milk?\" \"I remembered that I needed to remember,\" he said. "
    "\"That should count for something.\"",
    "\"Is this seat taken?\" \"No, go ahead.\" \"Thanks. It's the only empty one on the whole train, and I have been standing since the last station.\"",
    "\"How was the interview?\" \"I think it went well. They laughed at my joke, "
    "although I'm not sure it was supposed to be a joke.\"",
    "\"Can you help me carry this box upstairs?\" \"Sure. What's in it, bricks?\" \"Books,\" she said. \"Which, believe me, is worse.\"",
    "\"Excuse me, does this bus stop near the hospital?\" \"Yes, get off after the bridge. "
    "It's the stop with the big clock.\"",
    "\"What are you cooking?\" \"I'm not sure yet. I started with soup, but it may be turning into a stew.\"",
    "\"We're lost, aren't we?\" \"We're not lost. We're exploring.\" \"For two hours?\" \"Very thorough exploring. Besides, the map says the lake is just over that hill.\"",
    "\"Could you turn the music down a little?\" \"Sorry, I didn't realize it was so loud.\" "
    "\"It's fine. I just couldn't hear myself think.\"",
    "\"Why are you up so early?\" \"The birds started singing at five, and I gave up trying to sleep. There's coffee, if you want some.\"",
    "\"Do you have this jacket in a larger size?\" \"Let me check in the back. "
    "We might have one in dark blue.\"",
    "\"I can't find my keys anywhere.\" \"Did you check your coat pocket?\" \"Twice.\" \"And the front door?\" \"...They're in the door. They have been there all night.\"",
    "\"How long have you been learning the piano?\" \"About a year. "
    "I can play three songs, and my neighbors know all of them by heart.\"",
    "\"Table for two, please.\" \"Of course. Would you like to sit inside or on the terrace?\" \"The terrace, if it isn't too windy this evening.\"",
    "\"Are you coming to the meeting this afternoon?\" \"Which one?\" \"The meeting about having fewer meetings.\" \"I wouldn't miss it for the world.\"",
    "\"Mom, can I have a dog?\" \"Who will walk it when it rains?\" \"Me!\" \"Every single day, even in winter?\" \"...Most days, probably.\"",
    "\"That was a great film.\" \"Really? I fell asleep in the middle.\" \"You missed the best part.\" "
    "\"Then I'll have to watch it again.\"",
    "\"What time does the pharmacy close?\" \"At eight on weekdays and at noon on Saturdays.\" "
    "\"Then I'd better hurry, because it's already half past eleven.\"",
    "\"Did the plants survive while we were away?\" \"Most of them. The cactus is thriving. "
    "The basil has opinions about our absence.\"",
    "\"I think I'll try running this year.\" \"That's great. How far?\" "
    "\"Let's start with the distance to the end of the street and see how it goes.\"",
    "\"Can I pay by card?\" \"Yes, just tap it on the reader below the screen.\" \"Thanks. Could I also get a paper receipt, please?\"",
    "\"Who ate the last piece of cake?\" asked his mother. \"I have no idea,\" said the boy, quietly wiping chocolate off his chin.",
    "\"It's raining again.\" \"Good. The garden needed it.\" \"You say that every time it rains.\" \"And every time, the garden agrees with me.\"",
    "\"Hello, I'd like to book an appointment.\" \"Certainly. Is Tuesday afternoon convenient for you?\" "
    "\"Tuesday works. Around three, if possible.\"",
    "\"How do you stay so calm?\" \"I make a list. Once everything is written down, "
    "it looks a lot less frightening.\"",
    "\"Should we take the stairs or the elevator?\" \"The stairs. We've been sitting all day.\" "
    "\"It's the tenth floor.\" \"The elevator, then.\"",
    "\"What did the doctor say?\" \"Rest for a few days, drink plenty of water and stop reading about symptoms on the internet.\"",
    "\"Do you want to split a pizza?\" \"Only if we can agree on the toppings.\" "
    "\"So we're ordering two pizzas.\"",
    "\"Welcome back! How was the trip?\" \"Wonderful, thank you. But after all those early trains, I need a holiday to recover from it.\"",
    "\"Is the shop open on Sunday?\" \"Only in the morning. They close at one.\" "
    "\"Then I'll go early and get fresh bread.\"",
    "\"Where should I put these boxes?\" \"Anywhere you can find a space.\" "
    "\"There isn't any space.\" \"Then on top of the other boxes.\"",
)

INSTRUCTIONS = (
    "To change a flat tire, loosen the nuts slightly before lifting the car with the jack. "
    "Remove the wheel, fit the spare and tighten the nuts in a star pattern.",
    "Before painting a room, wash the walls, fill any holes and cover the floor. "
    "Start with the ceiling and work your way down.",
    "To repot a plant, water it the day before so the roots slide out easily. "
    "Choose a pot only a little larger than the old one and fill the gaps with fresh soil.",
    "When writing a formal email, keep the subject line short and specific. "
    "State your request in the first paragraph and thank the reader at the end.",
    "To sharpen a pencil with a knife, cut away from yourself in short, shallow strokes, "
    "turning the pencil a little after each one.",
    "Read the whole recipe before you start cooking. "
    "It is much easier to prepare the ingredients in advance than to chop onions while the oil smokes.",
    "To clean a window without streaks, use a little dish soap in warm water, wipe from top to bottom "
    "and dry the glass with a clean cloth or a squeegee.",
    "If you are learning a new language, practice a little every day rather than a lot once a week. "
    "Short, regular sessions help the words stick.",
    "To fold a shirt neatly, lay it face down, fold each side toward the middle with the sleeves, "
    "and then fold the bottom up to the collar.",
    "When assembling flat-pack furniture, sort the screws into groups before you begin. "
    "Check each step twice, because an early mistake may only show up at the end.",
    "To brew tea properly, warm the pot first, use freshly boiled water and let the leaves steep for "
    "three to five minutes before pouring.",
    "Before a long hike, check the weather, tell someone your route and pack more water than you think "
    "you will need.",
    "To remove a splinter, clean the area, then gently pull it out with tweezers in the direction "
    "it went in. Wash the skin again afterwards.",
    "To hang a picture straight, mark the height of the hook on the wall with a pencil "
    "and check it with a level before you drill.",
    "If a pot boils over on the stove, turn the heat down rather than off, "
    "and stir gently until the bubbles settle.",
    "To keep a cut flower arrangement fresh, change the water every two days "
    "and trim a little from each stem at an angle.",
    "When giving a short speech, know your first and last sentences by heart. "
    "The middle is easier to manage once you have started well.",
    "To save energy at home, turn off lights in empty rooms, wash clothes at lower temperatures "
    "and close curtains at night in winter.",
    "To wrap a present, measure the paper so it just overlaps around the box. "
    "Fold the edges under for a clean line and use small pieces of tape.",
    "If a smoke alarm starts chirping every minute, its battery is running low. "
    "Replace it as soon as possible, and test the alarm afterwards.",
    "Before you sign a contract, read every page, including the small print, ask about anything unclear "
    "and keep a copy for your records.",
    "To make a bed with tight corners, tuck the sheet under the foot of the mattress first, "
    "then lift the side edge, fold it into a triangle and tuck it in.",
    "When studying for an exam, test yourself instead of rereading your notes. "
    "Trying to recall the answer is what makes it stay in memory.",
    "To unclog a sink, try hot water and a plunger before reaching for chemicals. "
    "Often the blockage is just hair caught near the drain.",
    "To start a compost heap, mix green waste such as vegetable scraps with brown waste such as "
    "dry leaves. Turn it now and then and keep it damp but not soaking.",
)

MISC = (
    "A good night's sleep improves memory, mood and concentration. "
    "Keeping the bedroom dark, cool and quiet makes it easier to fall asleep.",
    "Walking for half an hour a day is one of the simplest ways to stay healthy. "
    "It strengthens the heart and clears the head.",
    "Drawing is mostly a matter of learning to see. "
    "Beginners draw what they think an object looks like; artists draw the shapes actually in front of them.",
    "An orchestra tunes to a single note before the concert begins. "
    "The oboe usually plays it, because its clear sound is easy for everyone to hear.",
    "Saving a small amount every month adds up faster than most people expect. "
    "The hardest part is starting, not keeping going.",
    "Children learn to speak by listening long before they say their first word. "
    "Talking and reading to babies helps them build a rich vocabulary.",
    "A budget is simply a plan for where your money will go. "
    "Writing down what you spend for a month is often a surprising first step.",
    "Poetry often works by saying less than it means. "
    "A single image can carry a feeling that would take a page of explanation.",
    "Cats sleep for much of the day, but they are rarely in deep sleep for long. "
    "Even a dozing cat will twitch an ear at an unfamiliar sound.",
    "Good teachers ask questions more often than they give answers. "
    "Students remember what they work out for themselves far better than what they are told.",
    "The best way to get better at writing is to write regularly and read widely. "
    "Revising a draft teaches more than producing a new one.",
    "Learning to play a musical instrument trains the ears, the hands and patience all at once. "
    "Progress is slow at first and then suddenly feels easy.",
    "A museum visit is more enjoyable if you choose a few rooms and take your time. "
    "Trying to see everything in one afternoon leaves only tired feet.",
    "Volunteering at the community garden gave her a reason to get outside every weekend. "
    "She also learned more about vegetables than she had in her whole life.",
    "Parrots can learn to imitate human speech, but many of them also invent their own whistles "
    "and calls to get attention.",
    "Small businesses often rely on word of mouth. "
    "A friendly conversation at the counter can bring in more customers than an expensive advertisement.",
    "Traveling by night train saves a hotel bill and a day of travel. "
    "You fall asleep in one place and wake up somewhere completely different.",
    "Board games have enjoyed a revival in recent years. "
    "Many people enjoy an evening around a table with friends, dice and cards instead of screens.",
    "Handwritten letters have become rare, which makes receiving one feel special. "
    "People tend to keep them in a drawer for years and read them again now and then.",
    "Horses can sleep standing up, thanks to a system of tendons that locks their legs in place. "
    "For deep sleep, however, they need to lie down.",
    "A good map leaves things out. It shows only what the traveler needs, "
    "so that the important roads and paths stand out clearly.",
    "Laughing with friends lowers stress and can even make pain easier to bear. "
    "Researchers have found that people laugh far more in company than alone.",
    "Many people find that tidying a desk at the end of the day makes the next morning easier. "
    "It is a small ritual that marks the end of work.",
    "Honey almost never spoils. Its low water content and natural acidity "
    "make it a poor home for bacteria, so a sealed jar can last for many years.",
    "A short nap in the early afternoon can restore alertness. "
    "Longer naps, however, often leave people groggy for an hour afterwards.",
    "Theaters keep a single light burning on the empty stage at night. "
    "It keeps people from falling into the orchestra pit in the dark.",
    "Kindness is contagious. People who see someone help a stranger are more likely to help "
    "someone themselves later that day.",
    "Gardening teaches patience. You plant a seed, water it, wait, and sometimes nothing happens "
    "until you have almost given up.",
    "Photographers talk about the golden hour, the time just after sunrise and before sunset "
    "when the light is soft, warm and flattering.",
    "Chess players study old games to learn common patterns. "
    "A strong player recognizes a position at a glance rather than calculating every move.",
)

LONGER = (
    "The old bakery on the corner opens before dawn. By the time the first commuters hurry past, "
    "the windows are fogged with steam and the shelves are stacked with warm loaves, sweet rolls and "
    "small cakes dusted with sugar. The baker says the secret is not a special flour but simply time: "
    "the dough rests overnight in a cool room while the town sleeps.",
    "Scientists studying sleep have found that the brain is surprisingly busy at night. During deep "
    "sleep it replays the events of the day and strengthens the memories worth keeping. During dreaming "
    "sleep it seems to mix those memories with older ones, which may explain why dreams so often combine "
    "familiar people and places in strange new ways.",
    "When the river flooded in spring, the whole village helped to fill sandbags. Farmers brought tractors, "
    "teenagers carried bags along the bank, and the school kitchen made soup for everyone working through "
    "the night. By morning the water had started to fall, and the new wall of sand had held.",
    "Learning to drive is mostly about learning to pay attention to many things at once: the mirrors, "
    "the speed, the road signs and the other drivers. At first every decision feels slow and deliberate. "
    "After a few months, most of it becomes automatic, leaving the mind free to notice what really matters.",
    "A well-made wooden chair can last for generations. The joints are cut so that the parts lock "
    "together, and the glue only helps to hold them in place. Many old chairs that look fragile are in "
    "fact far stronger than modern ones held together with a handful of screws.",
    "The museum's newest exhibit is a room full of old household objects: a hand-cranked washing machine, "
    "a telephone with a rotating dial, a radio the size of a cupboard. Children press their noses to the "
    "glass and ask how anyone managed, while their grandparents smile and tell stories about each one.",
    "Every good recipe for bread comes down to four ingredients: flour, water, salt and yeast. What changes "
    "from one loaf to the next is the proportion of water, the length of the rise and the heat of the oven. "
    "Bakers spend years learning how small changes in each step show up in the crust and crumb.",
    "The first week at a new job is often exhausting, even when nothing difficult happens. Every name, "
    "password, hallway and coffee machine is unfamiliar, and the brain works hard to learn them all. "
    "By the end of the month, the same office feels ordinary, and the tiredness is gone.",
    "On clear winter nights, the sky away from city lights is full of stars. With a little patience, "
    "the eyes adjust to the dark, and faint clusters and the pale band of the galaxy slowly appear. "
    "A pair of ordinary binoculars reveals even more, including craters on the moon.",
    "The community center offers free classes for adults on weekday evenings. This term there is a course "
    "on basic computer skills, another on cooking on a budget, and a conversation group for people "
    "learning English. The teachers are volunteers, and the tea and biscuits are always free.",
    "Bridges must be designed to carry much more than their everyday load. Engineers account for heavy "
    "trucks, strong winds, temperature changes that make steel expand and shrink, and even the rhythm of "
    "people walking in step. Large bridges include joints that allow the deck to move a little without cracking.",
    "Most of the water on Earth is salty ocean water. Only a small fraction is fresh, and much of that is "
    "locked away in ice caps, glaciers and deep underground. The rivers and lakes we depend on every day "
    "hold only a tiny share of the planet's water.",
    "The orchestra had rehearsed the piece for weeks, but on the night of the concert something new "
    "happened. The slow movement felt softer, the pauses longer, and the audience seemed to hold its breath. "
    "Afterwards the conductor said that no performance is ever quite the same as the last one.",
    "Our grandfather kept bees at the bottom of the garden for nearly forty years. He wore no gloves, "
    "moved slowly and talked to the hives as if they were old friends. Every summer he gave away jars of "
    "honey to the neighbors, each one labeled in his careful, slanted handwriting.",
    "Many people find it easier to build a habit by attaching it to something they already do. "
    "Stretching while the kettle boils, reading a page after brushing their teeth or taking a short walk "
    "after lunch: small actions linked to daily routines tend to stick much better than grand resolutions.",
    "The little ferry crosses the bay six times a day. Locals use it to get to work and to the market, "
    "and visitors ride it just for the view. In rough weather the crossing is cancelled, and the whole "
    "island seems to slow down until the sea calms again.",
    "A healthy lawn does not need much watering. Deep watering once or twice a week encourages the roots "
    "to grow downward, where the soil stays moist. Frequent light watering keeps the roots near the "
    "surface, and the grass then suffers quickly in hot, dry weather.",
    "The class spent the afternoon building paper bridges between two stacks of books. The goal was to hold "
    "as many coins as possible. Flat sheets collapsed at once, but folded, pleated and rolled paper held "
    "surprising weights, and the students began to understand why real bridges have the shapes they do.",
    "Power cuts used to be common in the valley, so most families kept candles, a radio with batteries and "
    "a camping stove in the cupboard. Even now that the supply is reliable, the habit remains, and the "
    "cupboard is still the first place anyone looks when the lights flicker.",
    "The market is busiest on Saturday mornings. Farmers arrive before sunrise to set up their stalls, and "
    "by eight o'clock the narrow lanes are crowded with shoppers carrying baskets of apples, cheese, "
    "flowers and fresh eggs. By noon most of the stalls have sold out and are packing up.",
    "Some of the most important inventions are so ordinary that we hardly notice them. The zipper, the "
    "paper clip, the humble screw and the shipping container each changed how people work and live. "
    "None of them is exciting, but the modern world would look very different without them.",
    "A long-distance walk changes the way you see the landscape. In a car, hills are just a change in the "
    "engine's sound. On foot, every slope is felt in the legs, every stream has to be crossed, and a "
    "village on the horizon can take the whole afternoon to reach.",
    "Before the exam, the teacher reminded everyone to read each question carefully, to answer the easy ones "
    "first and to leave time at the end to check their work. She also told them to eat a good breakfast, "
    "which, she said, was worth more than an extra hour of late-night revision.",
    "Hospitals run around the clock. While most of the city sleeps, nurses check on patients, cleaners "
    "prepare the wards for the next day and doctors in the emergency department deal with whatever the "
    "night brings. The change of shift in the early morning is one of the busiest moments of the day.",
    "The town's clock tower had been stopped at a quarter past four for as long as anyone could remember. "
    "Last summer a retired engineer volunteered to repair it. After months of cleaning gears and replacing "
    "worn parts, the bells rang again, and people came out of their houses to listen.",
    "Fresh snow is a good insulator because it is mostly trapped air. Small animals dig tunnels beneath it "
    "to stay warm through the winter, and the ground under a thick layer of snow often stays just above "
    "freezing even when the air above is bitterly cold.",
    "A good conversation is as much about listening as talking. People who ask follow-up questions, "
    "remember details and let the other person finish are usually remembered as excellent company, "
    "even if they said very little about themselves.",
    "When the family decided to grow their own vegetables, they started with a single raised bed. "
    "The first year brought a glut of courgettes, a handful of beans and tomatoes eaten by snails. "
    "By the third year they had four beds, a compost heap and a small shed full of tools.",
    "Recycling works best when materials are clean and sorted. A greasy pizza box or a bottle full of "
    "liquid can spoil a whole batch of paper or plastic. Rinsing containers and following the local rules "
    "makes a bigger difference than most people realize.",
    "The youth choir practices in the church hall every Wednesday. Some of the singers can read music and "
    "some learn everything by ear, but the director insists that everyone listens to the voices around "
    "them. When the harmony finally comes together, the whole room seems to ring.",
    "Weather forecasts are based on measurements from satellites, balloons, ships and thousands of ground "
    "stations. Computers use these readings to simulate how the atmosphere will change over the coming "
    "days. The further ahead the forecast looks, the less certain it becomes.",
    "After the storm, the beach was covered with seaweed, driftwood and shells that had been washed up "
    "from deeper water. Early walkers picked through the tangles looking for treasures, while gulls "
    "argued noisily over anything that looked edible.",
    "The children built a den at the bottom of the garden out of old blankets, chairs and a broken umbrella. "
    "They insisted on eating lunch inside it, even though it leaked, and declared it the best house "
    "they had ever lived in.",
    "Writing a good summary is harder than it looks. You have to decide what really matters, leave out "
    "interesting but unimportant details and explain the main idea in fewer words than the original. "
    "It is a useful skill for students, journalists and anyone who writes reports.",
    "The repair café meets on the first Saturday of every month. People bring broken toasters, torn "
    "jackets, wobbly chairs and bicycles with flat tires, and volunteers help them fix the items "
    "instead of throwing them away. Most visitors leave with a working object and a new skill.",
)

ALL: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("science", SCIENCE),
    ("history", HISTORY),
    ("daily_life", DAILY_LIFE),
    ("cooking", COOKING),
    ("sports", SPORTS),
    ("technology", TECHNOLOGY),
    ("nature", NATURE),
    ("dialogue", DIALOGUE),
    ("instructions", INSTRUCTIONS),
    ("misc", MISC),
    ("longer", LONGER),
)
