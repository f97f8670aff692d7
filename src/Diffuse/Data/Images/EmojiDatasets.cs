using System.Diagnostics;
using System.Formats.Tar;
using System.Globalization;
using System.IO.Compression;
using System.Text.Json;
using Diffuse.Randomness;

namespace Diffuse.Data.Images;

/// <summary>
/// One emoji image package of emoji-data (Cal Henderson's <c>emoji-datasource-*</c> on npm): its PNG folder, the
/// <c>emoji.json</c> flag that says which emoji it draws, and the graphics' licence. Internal so that tests can shrink
/// the images; the real packages are <see cref="Twitter"/> and <see cref="Google"/>.
/// </summary>
/// <param name="Name">The data set name (<c>emoji</c>, <c>emoji-google</c>).</param>
/// <param name="Package">The npm package name.</param>
/// <param name="Version">The pinned package version.</param>
/// <param name="ImageSet">The image set: PNGs are <c>img/&lt;ImageSet&gt;/64/</c>, drawn when <c>has_img_&lt;ImageSet&gt;</c> is true.</param>
/// <param name="Side">The PNGs are Side×Side.</param>
/// <param name="Licence">The licence and attribution of the graphics, recorded with every model trained on them.</param>
internal sealed record EmojiPackage(string Name, string Package, string Version, string ImageSet, int Side, string Licence)
{
    public static readonly EmojiPackage Twitter = new("emoji", "emoji-datasource-twitter", "16.0.0", "twitter", 64,
        "Twemoji graphics, copyright Twitter, Inc. and other contributors, licensed under CC-BY 4.0 "
        + "(https://creativecommons.org/licenses/by/4.0/); via the npm package emoji-datasource-twitter@16.0.0 (emoji-data, Cal Henderson, MIT)");

    public static readonly EmojiPackage Google = new("emoji-google", "emoji-datasource-google", "16.0.0", "google", 64,
        "Noto Emoji graphics, copyright Google Inc., licensed under the Apache License 2.0 "
        + "(https://www.apache.org/licenses/LICENSE-2.0); via the npm package emoji-datasource-google@16.0.0 (emoji-data, Cal Henderson, MIT)");

    /// <summary>The package spec given to npm.</summary>
    public string Spec => $"{Package}@{Version}";

    /// <summary>The folder of the PNGs inside the package, below its top folder.</summary>
    public string ImageFolder => $"img/{ImageSet}/64";
}

/// <summary>A base emoji and its skin-tone variants (one group: always on the same side of the split).</summary>
/// <param name="Name">The base emoji's Unicode name.</param>
/// <param name="Category">The class: an index into <see cref="EmojiDatasets.Categories"/>.</param>
/// <param name="Images">The PNG file names: the base emoji first, then its skin-tone variants.</param>
internal sealed record EmojiGroup(string Name, int Category, string[] Images);

/// <summary>
/// Colour emoji images from the npm packages of emoji-data: <c>emoji</c> (Twemoji, <c>emoji-datasource-twitter@16.0.0</c>,
/// CC-BY 4.0) and <c>emoji-google</c> (Noto Emoji, <c>emoji-datasource-google@16.0.0</c>, Apache 2.0). Fetched once with
/// <c>npm pack</c> and kept per size as a compact cache (<see cref="ImageDatasetFile"/>), like <see cref="NpmDatasets"/>.
/// </summary>
/// <remarks>
/// <para>Images. Every emoji of <c>emoji.json</c> that the set draws, with all its skin-tone variants
/// (<c>skin_variations</c>), from the 64×64 RGBA PNGs: composited onto white, then shrunk to <c>size</c>×<c>size</c>
/// by averaging s×s blocks (s = 64/size, so size divides 64: 8, 16, 32 or 64), rounded; uint8 RGB, [N, 3, H, W].</para>
/// <para>Classes: the nine categories of <see cref="Categories"/>. The "Component" category (the five skin-tone
/// swatches; hair components are not drawn) is dropped.</para>
/// <para>Split. A base emoji and its skin-tone variants form a group, and a group is wholly in one split, so that no
/// near-duplicate of a test image is trained on. Within each category the groups are put in the order of a permutation
/// seeded by <see cref="SplitSeed"/> (stream = category), and taken into the test split until it holds at least 10% of
/// the category's images (rounded). Counts are of images, each skin-tone variant counting as one. Each split is then
/// stored in a seeded shuffled order, as <see cref="NpmDatasets"/> does.</para>
/// <para>Cache: <c>&lt;root&gt;/&lt;name&gt;-&lt;size&gt;/train.dfimg</c> and <c>test.dfimg</c>; root as for
/// <see cref="NpmDatasets.DefaultCacheRoot"/>. Loaded data sets carry the graphics' licence in <see cref="ImageDataset.Licence"/>.</para>
/// </remarks>
public static class EmojiDatasets
{
    /// <summary>The seed of the group permutations that choose the test split.</summary>
    public const ulong SplitSeed = 20_261_202;

    /// <summary>The fraction of each category's images held out for the test split (at least; groups are not cut).</summary>
    public const double TestFraction = 0.1;

    /// <summary>The side of the images when no size is given.</summary>
    public const int DefaultSize = 32;

    private static readonly EmojiPackage[] Packages = [EmojiPackage.Twitter, EmojiPackage.Google];

    /// <summary>The classes, in label order: emoji-data's categories without "Component".</summary>
    public static IReadOnlyList<string> Categories { get; } = Array.AsReadOnly(new[]
    {
        "Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink", "Travel & Places", "Activities",
        "Objects", "Symbols", "Flags",
    });

    /// <summary>The dropped category.</summary>
    public const string DroppedCategory = "Component";

    /// <summary>The data sets this class provides: <c>emoji</c> and <c>emoji-google</c>.</summary>
    public static IReadOnlyList<string> Names { get; } = Array.AsReadOnly(Packages.Select(p => p.Name).ToArray());

    /// <summary>Whether <paramref name="name"/> names one of <see cref="Names"/> (ignoring case, with '_' for '-').</summary>
    public static bool IsKnown(string? name) => Find(name) is not null;

    /// <summary>The licence and attribution of the graphics of data set <paramref name="name"/>.</summary>
    /// <exception cref="DiffuseException">The name is unknown.</exception>
    public static string Licence(string name) => Get(name).Licence;

    /// <summary>The folder that holds the cache of data set <paramref name="name"/> at side <paramref name="size"/>.</summary>
    /// <exception cref="DiffuseException">The name is unknown or the size does not divide 64.</exception>
    public static string CacheFolder(string name, int size = DefaultSize, string? cacheDir = null) => CacheFolder(Get(name), size, cacheDir);

    /// <summary>
    /// Loads one split at <paramref name="size"/>×<paramref name="size"/>, fetching and converting the package first if
    /// the cache does not hold it yet. The result, owned by the caller, carries the licence in <see cref="ImageDataset.Licence"/>.
    /// </summary>
    /// <param name="name"><c>emoji</c> or <c>emoji-google</c>.</param>
    /// <param name="split">Which split to load.</param>
    /// <param name="size">The side of the images: 8, 16, 32 or 64.</param>
    /// <param name="cacheDir">The cache root; null for <see cref="NpmDatasets.DefaultCacheRoot"/>.</param>
    /// <param name="log">Receives one line per notable event.</param>
    /// <exception cref="DiffuseException">
    /// The name or size is unknown, npm is missing or fails, a PNG is missing or damaged (named), or the cache cannot be written or read.
    /// </exception>
    public static ImageDataset Load(string name, DatasetSplit split, int size = DefaultSize, string? cacheDir = null, Action<string>? log = null) =>
        LoadPackage(Get(name), split, size, cacheDir, log, "npm");

    /// <summary>Makes sure the cache holds both splits of <paramref name="name"/> at <paramref name="size"/> (see <see cref="Load"/>).</summary>
    /// <inheritdoc cref="Load" path="/param"/>
    /// <exception cref="DiffuseException">As <see cref="Load"/>.</exception>
    public static LoadReport Prepare(string name, int size = DefaultSize, string? cacheDir = null, Action<string>? log = null) =>
        PrepareCache(Get(name), size, cacheDir, log, "npm");

    /// <summary>Converts a package obtained another way (its <c>.tgz</c>, or the folder it was extracted to) into the cache.</summary>
    /// <exception cref="DiffuseException">The name or size is unknown, or the package is missing or damaged.</exception>
    public static LoadReport Import(string name, string package, int size = DefaultSize, string? cacheDir = null, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(package);
        var p = Get(name);
        return Convert(p, package, size, CacheFolder(p, size, cacheDir), log, TimeSpan.Zero);
    }

    internal static ImageDataset LoadPackage(EmojiPackage package, DatasetSplit split, int size, string? cacheDir, Action<string>? log, string npm)
    {
        var report = PrepareCache(package, size, cacheDir, log, npm);
        var data = ImageDatasetFile.Load(Path.Combine(report.CacheFolder, split == DatasetSplit.Train ? NpmDatasets.TrainFile : NpmDatasets.TestFile));
        data.Licence = package.Licence;
        return data;
    }

    internal static LoadReport PrepareCache(EmojiPackage package, int size, string? cacheDir, Action<string>? log, string npm)
    {
        string folder = CacheFolder(package, size, cacheDir);
        return NpmDatasets.PrepareCache(package.Name, package.Spec, folder, log, npm, "or give the package's .tgz to EmojiDatasets.Import",
            (tarball, fetchTime) => Convert(package, tarball, size, folder, log, fetchTime));
    }

    /// <summary>Reads the package (a .tgz or an extracted folder) and writes both cache files.</summary>
    internal static LoadReport Convert(EmojiPackage package, string source, int size, string folder, Action<string>? log, TimeSpan fetchTime)
    {
        CheckSize(package, size);
        var clock = Stopwatch.StartNew();
        var (json, pngs) = EmojiPackageReader.Read(package, source);
        var (groups, dropped) = ParseGroups(package, json, source);
        var inTest = TestGroups(groups.Select(g => g.Category).ToArray(), groups.Select(g => g.Images.Length).ToArray(), Categories.Count);
        int perImage = 3 * size * size;
        (byte[] Pixels, long[] Labels) Gather(bool test)
        {
            var members = new List<(string File, string Name, int Category)>();
            for (int g = 0; g < groups.Count; g++)
                if (inTest[g] == test)
                    members.AddRange(groups[g].Images.Select(f => (f, groups[g].Name, groups[g].Category)));
            var order = SeededNoise.Permutation(NpmDatasets.OrderSeed, test ? 1UL : 0UL, members.Count);
            var pixels = new byte[(long)members.Count * perImage];
            var labels = new long[members.Count];
            for (int j = 0; j < order.Length; j++)
            {
                var (file, name, category) = members[order[j]];
                string where = $"{package.ImageFolder}/{file}";
                var png = pngs(file) ?? throw new DiffuseException(
                    $"{package.Name}: {where} ({name}) is missing from '{source}': the {package.Spec} package is incomplete; fetch it again.");
                byte[] rgba;
                try
                {
                    var (w, h, decoded) = PngDecoder.Decode(png);
                    if (w != package.Side || h != package.Side) throw new InvalidDataException($"it is {w}×{h}, not {package.Side}×{package.Side}");
                    rgba = decoded;
                }
                catch (InvalidDataException e)
                {
                    throw new DiffuseException($"{package.Name}: {where} ({name}) in '{source}' is not a valid PNG image: {e.Message}; fetch the {package.Spec} package again.", e);
                }
                OnWhite(rgba, package.Side, size, pixels.AsSpan((int)((long)j * perImage), perImage));
                labels[j] = category;
            }
            return (pixels, labels);
        }
        var (trainPixels, trainLabels) = Gather(test: false);
        var (testPixels, testLabels) = Gather(test: true);
        string[] classes = Categories.ToArray();
        ImageDatasetFile.Save(Path.Combine(folder, NpmDatasets.TrainFile), trainLabels.Length, 3, size, size, classes,
            $"{package.Name} (train)", trainLabels, s => s.Write(trainPixels));
        ImageDatasetFile.Save(Path.Combine(folder, NpmDatasets.TestFile), testLabels.Length, 3, size, size, classes,
            $"{package.Name} (test)", testLabels, s => s.Write(testPixels));
        string line = $"{package.Name}: {trainLabels.Length:N0} training and {testLabels.Length:N0} test images of {size}×{size} RGB "
            + $"({groups.Count:N0} emoji with their skin-tone variants, {Categories.Count} categories; {dropped} '{DroppedCategory}' images dropped) "
            + $"written to '{folder}' in {clock.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s";
        log?.Invoke(line);
        return new LoadReport(package.Name, folder, true, trainLabels.Length, testLabels.Length, 0, 0, [line], fetchTime, clock.Elapsed);
    }

    /// <summary>
    /// Which groups form the test split: within each category, groups in the order of a permutation seeded by
    /// <see cref="SplitSeed"/> (stream = category) until the test images reach round(<see cref="TestFraction"/>·n) of the
    /// category's n images.
    /// </summary>
    /// <param name="category">The category of each group.</param>
    /// <param name="images">How many images each group holds.</param>
    /// <param name="classes">The number of categories.</param>
    internal static bool[] TestGroups(int[] category, int[] images, int classes)
    {
        var inTest = new bool[category.Length];
        for (int c = 0; c < classes; c++)
        {
            var members = Enumerable.Range(0, category.Length).Where(g => category[g] == c).ToArray();
            int total = members.Sum(g => images[g]);
            int target = (int)Math.Round(TestFraction * total, MidpointRounding.AwayFromZero);
            int taken = 0;
            foreach (int k in SeededNoise.Permutation(SplitSeed, (ulong)c, members.Length))
            {
                if (taken >= target) break;
                inTest[members[k]] = true;
                taken += images[members[k]];
            }
        }
        return inTest;
    }

    /// <summary>
    /// Composites 64×64 (Side×Side) RGBA onto white and averages s×s blocks, s = side/size: each output byte is
    /// round(Σ(c·a + 255·(255 − a)) / (255·s²)), written as [3, size, size] into <paramref name="output"/>.
    /// </summary>
    internal static void OnWhite(byte[] rgba, int side, int size, Span<byte> output)
    {
        int s = side / size;
        long denominator = 255L * s * s;
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
                for (int c = 0; c < 3; c++)
                {
                    long sum = 0;
                    for (int dy = 0; dy < s; dy++)
                        for (int dx = 0; dx < s; dx++)
                        {
                            int p = ((y * s + dy) * side + x * s + dx) * 4;
                            int a = rgba[p + 3];
                            sum += rgba[p + c] * a + 255 * (255 - a);
                        }
                    output[(c * size + y) * size + x] = (byte)((2 * sum + denominator) / (2 * denominator));
                }
    }

    /// <summary>The groups of <c>emoji.json</c> that the set draws, in file order, and how many Component images were dropped.</summary>
    private static (List<EmojiGroup> Groups, int Dropped) ParseGroups(EmojiPackage package, byte[] json, string source)
    {
        string flag = $"has_img_{package.ImageSet}";
        var groups = new List<EmojiGroup>();
        int dropped = 0;
        try
        {
            using var document = JsonDocument.Parse(json);
            foreach (var entry in document.RootElement.EnumerateArray())
            {
                string name = entry.GetProperty("name").GetString() ?? "?";
                string category = entry.GetProperty("category").GetString() ?? "";
                var images = new List<string>();
                if (Drawn(entry, flag)) images.Add(entry.GetProperty("image").GetString()!);
                if (entry.TryGetProperty("skin_variations", out var skins) && skins.ValueKind == JsonValueKind.Object)
                    foreach (var variant in skins.EnumerateObject())
                        if (Drawn(variant.Value, flag)) images.Add(variant.Value.GetProperty("image").GetString()!);
                if (images.Count == 0) continue;
                if (category == DroppedCategory)
                {
                    dropped += images.Count;
                    continue;
                }
                int k = Categories.ToList().IndexOf(category);
                if (k < 0)
                    throw new DiffuseException($"{package.Name}: emoji.json in '{source}' gives '{name}' the unknown category '{category}': it is not the {package.Spec} package; fetch it again.");
                groups.Add(new EmojiGroup(name, k, images.ToArray()));
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException)
        {
            throw new DiffuseException($"{package.Name}: emoji.json in '{source}' is not emoji-data's list ({e.Message}); fetch the {package.Spec} package again.", e);
        }
        if (groups.Count == 0)
            throw new DiffuseException($"{package.Name}: emoji.json in '{source}' lists no emoji drawn in the {package.ImageSet} set; fetch the {package.Spec} package again.");
        return (groups, dropped);
    }

    private static bool Drawn(JsonElement entry, string flag) =>
        entry.TryGetProperty(flag, out var has) && has.ValueKind == JsonValueKind.True && entry.TryGetProperty("image", out _);

    private static void CheckSize(EmojiPackage package, int size)
    {
        if (size < 1 || size > package.Side || package.Side % size != 0)
            throw new DiffuseException(
                $"{package.Name} images are {package.Side}×{package.Side}: {Param.Of("EmojiDatasets.Load(size)", "size")} must divide {package.Side} "
                + $"(8, 16, 32 or 64; got {size}).");
    }

    private static string CacheFolder(EmojiPackage package, int size, string? cacheDir)
    {
        CheckSize(package, size);
        return Path.GetFullPath(Path.Combine(cacheDir ?? NpmDatasets.DefaultCacheRoot, $"{package.Name}-{size}"));
    }

    private static EmojiPackage? Find(string? name)
    {
        if (name is null) return null;
        string key = name.Trim().Replace('_', '-').ToLowerInvariant();
        return Packages.FirstOrDefault(p => p.Name == key);
    }

    private static EmojiPackage Get(string name) =>
        Find(name) ?? throw new DiffuseException($"unknown emoji data set '{name}': give one of {string.Join(", ", Names)}.");
}

/// <summary>Reads <c>emoji.json</c> and the PNGs of one image set from an emoji-data package (.tgz or extracted folder).</summary>
internal static class EmojiPackageReader
{
    /// <summary>The bytes of <c>emoji.json</c> and a look-up of PNG bytes by file name (null when absent).</summary>
    /// <exception cref="DiffuseException">The package is missing, unreadable or holds no emoji.json.</exception>
    public static (byte[] Json, Func<string, byte[]?> Png) Read(EmojiPackage package, string source)
    {
        if (File.Exists(source)) return ReadTarball(package, source);
        if (!Directory.Exists(source))
            throw new DiffuseException($"npm package '{source}' does not exist: give the .tgz file written by 'npm pack {package.Spec}' or the folder it was extracted to.");
        string? root = new[] { Path.Combine(source, "package"), source }.FirstOrDefault(r => File.Exists(Path.Combine(r, "emoji.json")));
        if (root is null)
            throw new DiffuseException($"'{source}' holds neither package/emoji.json nor emoji.json: give the folder that 'npm pack {package.Spec}' was extracted to.");
        string images = Path.Combine(root, package.ImageFolder);
        try
        {
            return (File.ReadAllBytes(Path.Combine(root, "emoji.json")), file =>
            {
                string path = Path.Combine(images, file);
                return File.Exists(path) ? File.ReadAllBytes(path) : null;
            });
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DiffuseException($"Cannot read '{source}': {e.Message}", e);
        }
    }

    private static (byte[] Json, Func<string, byte[]?> Png) ReadTarball(EmojiPackage package, string source)
    {
        byte[]? json = null;
        var pngs = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        string prefix = package.ImageFolder + "/";
        try
        {
            using var file = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            using var gzip = new GZipStream(file, CompressionMode.Decompress);
            using var tar = new TarReader(gzip);
            while (tar.GetNextEntry() is { } entry)
            {
                if (entry.DataStream is null) continue;
                string name = entry.Name.Replace('\\', '/');
                int slash = name.IndexOf('/');
                if (slash < 0) continue;
                string rest = name[(slash + 1)..];
                if (rest == "emoji.json") json = ReadAll(entry.DataStream);
                else if (rest.StartsWith(prefix, StringComparison.Ordinal) && rest.IndexOf('/', prefix.Length) < 0)
                    pngs[rest[prefix.Length..]] = ReadAll(entry.DataStream);
            }
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or FormatException)
        {
            throw new DiffuseException($"'{source}' is not a complete npm package (.tgz): {e.Message}. Fetch the package again.", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DiffuseException($"Cannot read npm package '{source}': {e.Message}", e);
        }
        if (json is null)
            throw new DiffuseException($"'{source}' holds no emoji.json: it is not the {package.Spec} package (or it is damaged); fetch it again.");
        return (json, f => pngs.GetValueOrDefault(f));
    }

    private static byte[] ReadAll(Stream stream)
    {
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        return memory.ToArray();
    }
}
