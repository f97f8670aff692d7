using Diffuse.Tests.ImageData;
using Diffuse.Tests.Training;

namespace Diffuse.Tests.Cli;

/// <summary>train and sample on image data through the command line, on a tiny labelled IDX data set.</summary>
public class ImageCommandTests
{
    /// <summary>A folder with train/t10k IDX files of 8×8 images in two classes (bright top or bottom half).</summary>
    internal static string WriteIdxFolder(string folder, int trainCount = 32, int testCount = 16)
    {
        foreach (var (prefix, count, seed) in new[] { ("train", trainCount, 0), ("t10k", testCount, 1) })
        {
            using var images = ImageTrainerTests.TwoClassImages(count, seed);
            var pixels = images.Images.contiguous().data<byte>().ToArray();
            IdxReaderTests.WriteIdx(Path.Combine(folder, $"{prefix}-images-idx3-ubyte"), new[] { count, 8, 8 }, pixels);
            IdxReaderTests.WriteIdx(Path.Combine(folder, $"{prefix}-labels-idx1-ubyte"), new[] { count }, images.Labels!.Select(l => (byte)l).ToArray());
        }
        return folder;
    }

    internal static string[] TinyTrain(string data, string output, int steps = 3) => new[]
    {
        "train", "--data", data, "--out", output, "--steps", steps.ToString(System.Globalization.CultureInfo.InvariantCulture), "--batch", "8",
        "--channels", "8", "--channel-mult", "1,2", "--blocks", "1", "--attention", "none", "--checkpoint-every", "2", "--timesteps", "50",
    };

    [Fact]
    public void TrainsAConditionalModelOnIdxFilesAndSamplesGridsFoldersClassesAndAnAnimation()
    {
        using var dir = new TempDir();
        string data = WriteIdxFolder(Directory.CreateDirectory(Path.Combine(dir.Path, "data")).FullName);
        string model = Path.Combine(dir.Path, "model");
        var train = Cli.Run(TinyTrain(data, model));
        Assert.True(train.Code == 0, train.Err);
        Assert.Contains("32 images of 1×8×8, 2 classes", train.Out);
        foreach (var file in new[] { "config.json", "model.safetensors", "loss.csv", "loss.png", "loss-by-timestep.png", "previews/step-000002.png", "previews/step-000003.png" })
            Assert.True(File.Exists(Path.Combine(model, file)), file);
        Assert.StartsWith("step,loss,loss_q1,loss_q2,loss_q3,loss_q4", File.ReadAllText(Path.Combine(model, "loss.csv")));

        string grid = Path.Combine(dir.Path, "grid.png");
        string gif = Path.Combine(dir.Path, "reverse.gif");
        var sample = Cli.Run("sample", "--model", model, "--out", grid, "--count", "6", "--steps", "4", "--animation", gif);
        Assert.True(sample.Code == 0, sample.Err);
        Assert.Contains("2 classes, guidance 1.5", sample.Out);
        Assert.True(File.Exists(grid) && File.Exists(gif));
        Assert.Equal("GIF89a", System.Text.Encoding.ASCII.GetString(File.ReadAllBytes(gif), 0, 6));

        string folder = Path.Combine(dir.Path, "pngs");
        var one = Cli.Run("sample", "--model", model, "--out", folder, "--count", "3", "--class", "1", "--guidance", "3", "--sampler", "ddim", "--steps", "3", "--seed", "5");
        Assert.True(one.Code == 0, one.Err);
        var files = Directory.GetFiles(folder).Select(Path.GetFileName).Order().ToArray();
        Assert.Equal(new[] { "seed5-00000-class1.png", "seed5-00001-class1.png", "seed5-00002-class1.png" }, files);
        // The same seed and number give the same image, whatever the count.
        string again = Path.Combine(dir.Path, "again");
        Assert.Equal(0, Cli.Run("sample", "--model", model, "--out", again, "--count", "1", "--class", "1", "--guidance", "3", "--sampler", "ddim", "--steps", "3", "--seed", "5").Code);
        Assert.Equal(File.ReadAllBytes(Path.Combine(folder, "seed5-00000-class1.png")), File.ReadAllBytes(Path.Combine(again, "seed5-00000-class1.png")));

        Cli.AssertUserError(Cli.Run("sample", "--model", model, "--out", grid, "--class", "9"), "--class 9", "0 0", "1 1");
        Cli.AssertUserError(Cli.Run("sample", "--model", model, "--out", Path.Combine(dir.Path, "x.csv")), ".png grid or a folder");
        Cli.AssertUserError(Cli.Run("sample", "--model", model, "--out", grid, "--animation", "x.mp4"), "--animation", ".gif");
        Cli.AssertUserError(Cli.Run(TinyTrain(data, model)), "already holds a model", "--resume");
        var resumed = Cli.Run(TinyTrain(data, model, steps: 4).Append("--resume").ToArray());
        Assert.True(resumed.Code == 0, resumed.Err);
        Assert.Contains("trained 4 steps", resumed.Out);
    }

    [Fact]
    public void ImageOptionsOnTablesAndTableOptionsOnImagesAreClearErrors()
    {
        using var dir = new TempDir();
        string data = WriteIdxFolder(Directory.CreateDirectory(Path.Combine(dir.Path, "data")).FullName, 8, 4);
        Cli.AssertUserError(Cli.Run("train", "--data", data, "--out", Path.Combine(dir.Path, "m"), "--width", "64"), "--width", "--channels");
        Cli.AssertUserError(Cli.Run("train", "--data", data, "--out", Path.Combine(dir.Path, "m"), "--channel-mult", "1,x"), "--channel-mult", "1,2,2");
        string table = Path.Combine(dir.Path, "table");
        Assert.Equal(0, Cli.Run("train", "--data", "moons", "--out", table, "--steps", "2", "--width", "8", "--depth", "1").Code);
        Cli.AssertUserError(Cli.Run("sample", "--model", table, "--out", Path.Combine(dir.Path, "s.png"), "--class", "1"), "--class", "table");
        Cli.AssertUserError(Cli.Run("sample", "--model", "no-such-model", "--out", Path.Combine(dir.Path, "s.png")), "no-such-model", "does not exist");
    }
}

/// <summary>Every command's help renders (option descriptions are Spectre markup: a stray bracket breaks it).</summary>
public class HelpTests
{
    [Theory]
    [InlineData("demo")]
    [InlineData("train")]
    [InlineData("sample")]
    [InlineData("eval")]
    [InlineData("noise")]
    [InlineData("bench-samplers")]
    public void HelpOfEveryCommandRenders(string command)
    {
        var result = Cli.Run(command, "--help");
        Assert.True(result.Code == 0, result.Err);
        Assert.Contains("OPTIONS:", result.Out);
        Assert.Contains("--threads", result.Out);
    }
}
