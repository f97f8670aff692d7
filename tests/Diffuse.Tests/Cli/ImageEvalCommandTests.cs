using System.Globalization;
using System.Text.RegularExpressions;
using Diffuse.Cli;
using Diffuse.Evaluation.Features;
using Diffuse.Evaluation.SampleQuality;
using Diffuse.Randomness;
using Diffuse.Tests.ImageData;
using Diffuse.Tests.Training;
using static Diffuse.Tests.Cli.Cli;
using static TorchSharp.torch;

namespace Diffuse.Tests.Cli;

/// <summary>
/// A tiny class-conditional image model for the eval tests, built once: a folder of IDX files (40 training and 40 test
/// images of 8×8 in two classes, bright on the left or on the right), a U-Net of 8 channels and one level trained for 3
/// steps over 50 timesteps, and a small feature classifier trained on the training images for one epoch.
/// </summary>
public sealed class TinyImageModel : IDisposable
{
    private readonly TempDir _dir = new();

    public TinyImageModel()
    {
        Data = Path.Combine(_dir.Path, "idx");
        Directory.CreateDirectory(Data);
        var (trainPixels, trainLabels) = Images(seed: 1, count: 40);
        IdxReaderTests.WriteIdx(Path.Combine(Data, "train-images-idx3-ubyte"), [40, 8, 8], trainPixels);
        IdxReaderTests.WriteIdx(Path.Combine(Data, "train-labels-idx1-ubyte"), [40], trainLabels);
        var (testPixels, testLabels) = Images(seed: 2, count: 40);
        IdxReaderTests.WriteIdx(Path.Combine(Data, "t10k-images-idx3-ubyte"), [40, 8, 8], testPixels);
        IdxReaderTests.WriteIdx(Path.Combine(Data, "t10k-labels-idx1-ubyte"), [40], testLabels);

        Model = Path.Combine(_dir.Path, "model");
        var train = Run("train", "--data", Data, "--out", Model, "--steps", "3", "--batch", "8", "--channels", "8", "--channel-mult", "1",
            "--blocks", "1", "--attention", "none", "--timesteps", "50", "--dropout", "0", "--preview-every", "0");
        Assert.True(train.Code == 0, train.Err);

        Features = Path.Combine(_dir.Path, "tiny.safetensors");
        using var scope = NewDisposeScope();
        using var classifier = new FeatureClassifier(new FeatureClassifierConfig(1, 8, 8, 2, Features: 16)) { Dataset = "tiny" };
        var images = tensor(trainPixels, [40, 1, 8, 8], ScalarType.Byte);
        classifier.Train(images, tensor(trainLabels.Select(l => (long)l).ToArray()), Diffuse.Data.Images.ImageDataset.ToModelRange,
            epochs: 1, batchSize: 20, learningRate: 1e-3, seed: 0);
        classifier.Save(Features);
    }

    /// <summary>The IDX folder (train and t10k files).</summary>
    public string Data { get; }

    /// <summary>The model folder.</summary>
    public string Model { get; }

    /// <summary>The feature classifier file.</summary>
    public string Features { get; }

    /// <summary>A scratch folder for outputs.</summary>
    public string Folder => _dir.Path;

    public void Dispose() => _dir.Dispose();

    /// <summary>Class 0 is bright on the left half, class 1 on the right, with seeded noise; labels alternate.</summary>
    private static (byte[] Pixels, byte[] Labels) Images(ulong seed, int count)
    {
        var pixels = new byte[count * 64];
        var labels = new byte[count];
        for (int i = 0; i < count; i++)
        {
            labels[i] = (byte)(i % 2);
            for (int p = 0; p < 64; p++)
            {
                bool bright = (p % 8 < 4) == (labels[i] == 0);
                double noise = SeededNoise.Uniform(seed, (ulong)i, (ulong)p) * 60;
                pixels[i * 64 + p] = (byte)((bright ? 180 : 20) + noise);
            }
        }
        return (pixels, labels);
    }
}

public class ImageEvalCommandTests(TinyImageModel tiny) : IClassFixture<TinyImageModel>
{
    [Fact]
    public void EvalPrintsTheImageQualityTableWithFloorsAndWritesJsonAndTheMemorisationPicture()
    {
        string json = Path.Combine(tiny.Folder, "quality.json");
        string picture = Path.Combine(tiny.Folder, "nearest.png");
        var result = Run("eval", "--model", tiny.Model, "--features", tiny.Features, "--count", "20", "--json", json, "--memorization", picture);
        Assert.True(result.Code == 0, result.Err);

        // The model's own data is found from its config; the default image sampler is used.
        Assert.Contains($"reference: 20 images of the test split of {tiny.Data}", result.Out);
        Assert.Contains("2 classes in turn", result.Out);
        Assert.Contains("the default for images", result.Out);
        foreach (var metric in new[] { "FD (Diffuse tiny features)", "KD (Diffuse tiny features)", "precision (Diffuse tiny features, k = 3)",
                     "recall (Diffuse tiny features, k = 3)", "class accuracy (Diffuse tiny features)" })
            Assert.Contains(metric, result.Out);
        Assert.Contains("samples", result.Out);
        Assert.Contains("floor", result.Out);
        Assert.Contains("ratio", result.Out);
        Assert.Contains("embed", result.Err);

        var report = ImageQualityReport.FromJson(File.ReadAllText(json));
        Assert.Equal(20, report.GeneratedCount);
        Assert.Equal(20, report.ReferenceCount);
        Assert.NotNull(report.ClassAccuracy);
        Assert.InRange(report.ClassAccuracy!.Floor, 0, 1);

        Assert.Contains("memorisation: nearest of 40 training images", result.Out);
        Assert.Contains("median nearest distance: 20 samples", result.Out);
        using var bitmap = SkiaSharp.SKBitmap.Decode(picture);
        Assert.True(bitmap.Height > 16 * 8, $"picture of {bitmap.Width}×{bitmap.Height}");
    }

    [Fact]
    public void NllPrintsFiniteBitsPerDimOfTheTestSplitByTheBoundAndByTheOde()
    {
        var vlb = Run("eval", "--model", tiny.Model, "--features", tiny.Features, "--count", "10", "--sampler", "ddim", "--steps", "2",
            "--nll", "--nll-count", "6");
        Assert.True(vlb.Code == 0, vlb.Err);
        var bound = Regex.Match(vlb.Out, @"test-split NLL bound: (\S+) ± (\S+) bits/dim \(6 images, T = 50 terms each, σ² = β\)");
        Assert.True(bound.Success, vlb.Out);
        double bits = double.Parse(bound.Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.True(double.IsFinite(bits) && bits >= 0, $"bound {bits}");
        Assert.True(double.Parse(bound.Groups[2].Value, CultureInfo.InvariantCulture) > 0);
        Assert.Contains("per dim: prior", vlb.Out);
        Assert.Contains("decoder", vlb.Out);

        var ode = Run("eval", "--model", tiny.Model, "--features", tiny.Features, "--count", "10", "--sampler", "ddim", "--steps", "2",
            "--nll", "--nll-count", "4", "--method", "ode", "--ode-steps", "2");
        Assert.True(ode.Code == 0, ode.Err);
        var exact = Regex.Match(ode.Out, @"test-split NLL \(ODE\): (\S+) ± \S+ bits/dim \(4 images");
        Assert.True(exact.Success, ode.Out);
        double odeBits = double.Parse(exact.Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.True(double.IsFinite(odeBits) && odeBits >= 0, $"ODE {odeBits}");
        Assert.Contains("uniform dequantisation", ode.Out);
    }

    [Fact]
    public void ImageEvalErrorsNameTheProblemAndTheFix()
    {
        AssertUserError(Run("eval", "--model", tiny.Model, "--features", Path.Combine(tiny.Folder, "none.safetensors")), "--features file", "does not exist");
        AssertUserError(Run("eval", "--model", tiny.Model, "--data", "moons"), "is a table", "trained on images");
        AssertUserError(Run("eval", "--model", tiny.Model, "--data", Path.Combine(tiny.Folder, "t.csv")), "is a table");
        AssertUserError(Run("eval", "--model", tiny.Model, "--nll-count", "5"), "give --nll too");
        AssertUserError(Run("eval", "--model", tiny.Model, "--memorization", "x.gif"), ".png");

        // Errors found after the data are read: the reader's notes come first on stderr, the error is the last line.
        var tooMany = Run("eval", "--model", tiny.Model, "--features", tiny.Features, "--count", "100");
        Assert.NotEqual(0, tooMany.Code);
        Assert.StartsWith("error: --count 100 needs 50 images of class 0", tooMany.Err.Trim().Split('\n')[^1]);
        Assert.Contains("give --count 40 or less", tooMany.Err);
        Assert.DoesNotContain("   at ", tooMany.Err);

        var unknown = Run("eval", "--model", tiny.Model, "--count", "10");
        Assert.NotEqual(0, unknown.Code);
        Assert.StartsWith("error: no feature network is known", unknown.Err.Trim().Split('\n')[^1]);
        Assert.Contains("--features", unknown.Err);
        Assert.Contains("train-classifier", unknown.Err);
    }

    [Fact]
    public void HeldOutImagesWithoutATestSplitAreTheReferenceButTheTrainingImagesAreRefused()
    {
        string test = Path.Combine(tiny.Data, "t10k-images-idx3-ubyte");
        var held = Run("eval", "--model", tiny.Model, "--features", tiny.Features, "--data", test, "--count", "10", "--sampler", "ddim", "--steps", "2");
        Assert.True(held.Code == 0, held.Err);
        Assert.Contains($"reference: 10 images of {test}; floor: 10 images of the training images of {Path.GetFullPath(tiny.Data)}", held.Out);
        Assert.Contains("class accuracy", held.Out);

        var trained = Run("eval", "--model", tiny.Model, "--features", tiny.Features, "--data", Path.Combine(tiny.Data, "train-images-idx3-ubyte"));
        Assert.NotEqual(0, trained.Code);
        Assert.StartsWith("error: --data", trained.Err.Trim().Split('\n')[^1]);
        Assert.Contains("holds the images the model was trained on", trained.Err);
    }

    [Fact]
    public void TheModelsOwnDataIsFoundFromTheSourceItsConfigRecords()
    {
        Assert.Equal("fashion-mnist", ImageSources.FromTrainingSource("fashion-mnist (train)"));
        Assert.Equal("mnist", ImageSources.FromTrainingSource("mnist"));
        Assert.Equal(Path.GetFullPath(tiny.Data), ImageSources.FromTrainingSource(Path.Combine(tiny.Data, "train-images-idx3-ubyte")));
        Assert.Equal("/no/such/folder", ImageSources.FromTrainingSource("/no/such/folder"));
        Assert.True(ImageSources.HasTestSplit(tiny.Data));
        Assert.True(ImageSources.HasTestSplit("fashion-mnist"));
        Assert.False(ImageSources.HasTestSplit(Path.Combine(tiny.Data, "t10k-images-idx3-ubyte")));
        Assert.False(ImageSources.HasTestSplit(tiny.Folder));
    }

    [Fact]
    public void ImageOptionsOnATableModelAreErrors()
    {
        using var dir = new TempDir();
        string model = Path.Combine(dir.Path, "moons");
        var train = Run("train", "--data", "moons", "--out", model, "--steps", "2", "--batch", "32", "--width", "8", "--depth", "1", "--timesteps", "10", "--count", "100");
        Assert.True(train.Code == 0, train.Err);
        AssertUserError(Run("eval", "--model", model, "--data", "moons", "--features", tiny.Features), "--features applies to image models", "trained on a table");
        AssertUserError(Run("eval", "--model", model, "--data", "moons", "--guidance", "2"), "--guidance applies to image models");
        AssertUserError(Run("eval", "--model", model, "--data", "moons", "--memorization", "m.png"), "--memorization applies to image models");
        AssertUserError(Run("eval", "--model", model), "--data is required");
    }
}
