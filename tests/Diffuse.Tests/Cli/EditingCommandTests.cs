using Diffuse.Imaging;
using Diffuse.Tests.Training;

namespace Diffuse.Tests.Cli;

/// <summary>
/// encode, decode, interpolate, edit, inpaint and noise --spectrum through the command line, on tiny 8×8 two-class
/// models trained once; every bad input is one error line and writes nothing.
/// </summary>
public sealed class EditingCommandTests : IClassFixture<EditingCommandTests.Models>
{
    /// <summary>A class-conditional and an unconditional tiny model, and their data, trained once for the class.</summary>
    public sealed class Models : IDisposable
    {
        private readonly TempDir _dir = new();

        public Models()
        {
            Data = ImageCommandTests.WriteIdxFolder(Directory.CreateDirectory(Path.Combine(_dir.Path, "data")).FullName);
            Conditional = Path.Combine(_dir.Path, "conditional");
            Unconditional = Path.Combine(_dir.Path, "unconditional");
            var first = Cli.Run(ImageCommandTests.TinyTrain(Data, Conditional));
            Assert.True(first.Code == 0, first.Err);
            var second = Cli.Run(ImageCommandTests.TinyTrain(Data, Unconditional).Append("--unconditional").Append("--seed").Append("1").ToArray());
            Assert.True(second.Code == 0, second.Err);
            // Two 8×8 grey test images as PNG files.
            var decode = Cli.Run("encode", "--model", Conditional, "--images", Data + ":test", "--count", "2", "--steps", "3", "--out", Path.Combine(_dir.Path, "two.safetensors"));
            Assert.True(decode.Code == 0, decode.Err);
            var pngs = Cli.Run("decode", "--model", Conditional, "--latents", Path.Combine(_dir.Path, "two.safetensors"), "--out", Path.Combine(_dir.Path, "pngs"));
            Assert.True(pngs.Code == 0, pngs.Err);
            Images = Directory.GetFiles(Path.Combine(_dir.Path, "pngs")).Order().ToArray();
        }

        public string Data { get; }
        public string Conditional { get; }
        public string Unconditional { get; }
        public string[] Images { get; }

        public void Dispose() => _dir.Dispose();
    }

    private readonly Models _models;

    public EditingCommandTests(Models models) => _models = models;

    private static void AssertNothingWritten(string path) => Assert.False(File.Exists(path) || Directory.Exists(path), $"{path} was written");

    [Fact]
    public void EncodeThenDecodeReconstructsAndRecordsTheModel()
    {
        using var dir = new TempDir();
        string latents = Path.Combine(dir.Path, "latents.safetensors");
        var encode = Cli.Run("encode", "--model", _models.Conditional, "--images", _models.Data + ":test", "--count", "4", "--sampler", "ddim", "--steps", "10", "--out", latents, "--check");
        Assert.True(encode.Code == 0, encode.Err);
        Assert.Contains("encoding 4 images", encode.Out);
        Assert.Contains("the images' classes, guidance 1", encode.Out);
        Assert.Contains("reconstruction: PSNR", encode.Out);
        Assert.Contains("encode [", encode.Err);
        var header = Diffuse.Checkpoints.Safetensors.ReadHeader(latents);
        Assert.Contains("diffuse.latents", header.Metadata.Keys);
        var (tensor, info) = Diffuse.Editing.LatentFile.Load(latents);
        using (tensor) Assert.Equal(new long[] { 4, 1, 8, 8 }, tensor.shape);
        Assert.Equal("euler", info.Sampler);
        Assert.Equal(10, info.Steps);
        using (var model = DiffusionModel.Load(_models.Conditional)) Assert.Equal(model.Identity, info.ModelIdentity);

        string grid = Path.Combine(dir.Path, "decoded.png");
        var decode = Cli.Run("decode", "--model", _models.Conditional, "--latents", latents, "--out", grid);
        Assert.True(decode.Code == 0, decode.Err);
        Assert.True(File.Exists(grid));
        string edited = Path.Combine(dir.Path, "as-class-1");
        var classEdit = Cli.Run("decode", "--model", _models.Conditional, "--latents", latents, "--class", "1", "--out", edited);
        Assert.True(classEdit.Code == 0, classEdit.Err);
        Assert.Contains("as class 1", classEdit.Out);
        Assert.Equal(4, Directory.GetFiles(edited).Length);

        // Another model's latents are refused, by name; nothing is written.
        string other = Path.Combine(dir.Path, "other.png");
        Cli.AssertUserError(Cli.Run("decode", "--model", _models.Unconditional, "--latents", latents, "--out", other), "another model", _models.Conditional);
        AssertNothingWritten(other);
        Cli.AssertUserError(Cli.Run("decode", "--model", _models.Conditional, "--latents", latents, "--steps", "5", "--out", other), "recorded in the latent file");
        Cli.AssertUserError(Cli.Run("encode", "--model", _models.Conditional, "--images", _models.Data + ":test", "--sampler", "ddpm", "--out", latents.Replace("latents", "x")), "deterministic", "--sampler");
        AssertNothingWritten(latents.Replace("latents", "x"));
    }

    [Fact]
    public void InterpolatesBetweenSeedsAndImagesSphericallyOrLinearly()
    {
        using var dir = new TempDir();
        string strip = Path.Combine(dir.Path, "strip.png");
        var seeds = Cli.Run("interpolate", "--model", _models.Conditional, "--seeds", "1,2", "--frames", "5", "--class", "0", "--steps", "4", "--out", strip);
        Assert.True(seeds.Code == 0, seeds.Err);
        Assert.Contains("spherical path of 5 latents", seeds.Out);
        Assert.True(File.Exists(strip));
        string gif = Path.Combine(dir.Path, "morph.gif");
        var images = Cli.Run("interpolate", "--model", _models.Unconditional, "--images", string.Join(",", _models.Images), "--frames", "4", "--linear", "--steps", "4", "--out", gif);
        Assert.True(images.Code == 0, images.Err);
        Assert.Contains("linear path of 4 latents", images.Out);
        Assert.Equal("GIF89a", System.Text.Encoding.ASCII.GetString(File.ReadAllBytes(gif), 0, 6));
        Cli.AssertUserError(Cli.Run("interpolate", "--model", _models.Conditional, "--seeds", "1", "--out", strip + "x.png"), "--seeds", "two seeds");
        Cli.AssertUserError(Cli.Run("interpolate", "--model", _models.Conditional, "--seeds", "1,2", "--frames", "1", "--out", strip + "x.png"), "--frames");
        AssertNothingWritten(strip + "x.png");
    }

    [Fact]
    public void EditsWithSdEditAndRefusesBadStrengthsAndClassesOfAModelWithoutThem()
    {
        using var dir = new TempDir();
        string output = Path.Combine(dir.Path, "before-after.png");
        var edit = Cli.Run("edit", "--model", _models.Conditional, "--image", _models.Images[0], "--strength", "0.5", "--class", "1", "--guidance", "2", "--steps", "6", "--out", output);
        Assert.True(edit.Code == 0, edit.Err);
        Assert.Contains("the last 3 of", edit.Out);
        Assert.Contains("towards class 1", edit.Out);
        Assert.Contains("edit [", edit.Err);
        Assert.True(File.Exists(output));
        string bad = Path.Combine(dir.Path, "bad.png");
        foreach (var strength in new[] { "0", "1.5", "-0.2" })
        {
            Cli.AssertUserError(Cli.Run("edit", "--model", _models.Conditional, "--image", _models.Images[0], "--strength", strength, "--out", bad), "--strength", "(0, 1]");
            AssertNothingWritten(bad);
        }
        Cli.AssertUserError(Cli.Run("edit", "--model", _models.Unconditional, "--image", _models.Images[0], "--class", "1", "--out", bad), "--class", "without classes");
        Cli.AssertUserError(Cli.Run("decode", "--model", _models.Unconditional, "--latents", "x.safetensors", "--class", "1", "--out", bad), "does not exist");
        AssertNothingWritten(bad);
    }

    [Fact]
    public void ImagesOfAnotherSizeOrChannelCountAreRefusedUnlessResized()
    {
        using var dir = new TempDir();
        string big = Path.Combine(dir.Path, "big.png");
        Figures.SaveImageGrid(big, Enumerable.Range(0, 100).Select(i => i / 100f).ToArray(), 1, 1, 10, 10, 1, padding: 0);
        string rgb = Path.Combine(dir.Path, "rgb.png");
        Figures.SaveImageGrid(rgb, Enumerable.Range(0, 192).Select(i => (i % 7) / 7f).ToArray(), 1, 3, 8, 8, 1, padding: 0);
        string output = Path.Combine(dir.Path, "out.png");
        Cli.AssertUserError(Cli.Run("edit", "--model", _models.Conditional, "--image", big, "--out", output), "big.png", "grey 10×10", "grey 8×8", "--resize");
        Cli.AssertUserError(Cli.Run("encode", "--model", _models.Conditional, "--images", rgb, "--out", Path.Combine(dir.Path, "l.safetensors")), "rgb.png", "RGB 8×8", "grey 8×8", "--resize");
        AssertNothingWritten(output);
        AssertNothingWritten(Path.Combine(dir.Path, "l.safetensors"));
        var resized = Cli.Run("edit", "--model", _models.Conditional, "--image", $"{big},{rgb}", "--resize", "--strength", "0.3", "--steps", "4", "--out", output);
        Assert.True(resized.Code == 0, resized.Err);
        Assert.True(File.Exists(output));
    }

    [Fact]
    public void InpaintsARectangleOrAMaskAndRefusesAMaskOfAnotherSize()
    {
        using var dir = new TempDir();
        string output = Path.Combine(dir.Path, "filled.png");
        var rect = Cli.Run("inpaint", "--model", _models.Conditional, "--image", _models.Data + ":test", "--count", "3", "--mask-rect", "2,2,4,4", "--steps", "6", "--out", output);
        Assert.True(rect.Code == 0, rect.Err);
        Assert.Contains("inpainting 25% of 3 images by the replacement method", rect.Out);
        Assert.Contains("inpaint [", rect.Err);
        string mask = Path.Combine(dir.Path, "mask.png");
        Figures.SaveImageGrid(mask, Enumerable.Range(0, 64).Select(i => i < 32 ? 1f : 0f).ToArray(), 1, 1, 8, 8, 1, padding: 0);
        string folder = Path.Combine(dir.Path, "filled");
        var repaint = Cli.Run("inpaint", "--model", _models.Unconditional, "--image", _models.Images[0], "--mask", mask, "--resample", "3", "--jump", "2", "--steps", "4", "--out", folder);
        Assert.True(repaint.Code == 0, repaint.Err);
        Assert.Contains("RePaint (resample 3, jump 2)", repaint.Out);
        Assert.Single(Directory.GetFiles(folder));

        string wrong = Path.Combine(dir.Path, "wrong.png");
        Figures.SaveImageGrid(wrong, new float[100], 1, 1, 10, 10, 1, padding: 0);
        string bad = Path.Combine(dir.Path, "bad.png");
        Cli.AssertUserError(Cli.Run("inpaint", "--model", _models.Conditional, "--image", _models.Images[0], "--mask", wrong, "--out", bad), "mask", "10×10", "8×8");
        Cli.AssertUserError(Cli.Run("inpaint", "--model", _models.Conditional, "--image", _models.Images[0], "--mask-rect", "6,6,4,4", "--out", bad), "--mask-rect", "inside");
        Cli.AssertUserError(Cli.Run("inpaint", "--model", _models.Conditional, "--image", _models.Images[0], "--out", bad), "--mask");
        Cli.AssertUserError(Cli.Run("inpaint", "--model", _models.Conditional, "--image", _models.Images[0], "--mask-rect", "2,2,4,4", "--resample", "0", "--out", bad), "--resample");
        AssertNothingWritten(bad);
    }

    [Fact]
    public void NoiseDrawsTheSpectrumOfTheModelsData()
    {
        using var dir = new TempDir();
        string chart = Path.Combine(dir.Path, "spectrum.png");
        var result = Cli.Run("noise", "--model", _models.Conditional, "--spectrum", chart, "--spectrum-count", "16");
        Assert.True(result.Code == 0, result.Err);
        Assert.Contains("power spectrum of 16 test images", result.Out);
        Assert.Contains("drowned", result.Out);
        Assert.True(File.Exists(chart));
        Cli.AssertUserError(Cli.Run("noise", "--model", _models.Conditional, "--data", _models.Data, "--spectrum", chart), "--model", "--data");
    }

    /// <summary>Every formulation edits alike: the commands reach the network only through its denoiser.</summary>
    [Theory]
    [InlineData("--formulation", "edm")]
    [InlineData("--learn-variance")]
    [InlineData("--prediction", "v")]
    [InlineData("--prediction", "x0")]
    public void EveryFormulationEncodesDecodesEditsAndInpaints(params string[] formulation)
    {
        using var dir = new TempDir();
        string model = Path.Combine(dir.Path, "model");
        var train = Cli.Run(ImageCommandTests.TinyTrain(_models.Data, model).Concat(formulation).ToArray());
        Assert.True(train.Code == 0, train.Err);
        string latents = Path.Combine(dir.Path, "l.safetensors");
        var encode = Cli.Run("encode", "--model", model, "--images", _models.Data + ":test", "--count", "2", "--sampler", "heun", "--steps", "8", "--out", latents, "--check");
        Assert.True(encode.Code == 0, encode.Err);
        Assert.Contains("reconstruction: PSNR", encode.Out);
        var decode = Cli.Run("decode", "--model", model, "--latents", latents, "--class", "0", "--out", Path.Combine(dir.Path, "d.png"));
        Assert.True(decode.Code == 0, decode.Err);
        var edit = Cli.Run("edit", "--model", model, "--image", _models.Images[0], "--strength", "0.4", "--sampler", "ddim", "--steps", "5", "--out", Path.Combine(dir.Path, "e.png"));
        Assert.True(edit.Code == 0, edit.Err);
        var inpaint = Cli.Run("inpaint", "--model", model, "--image", _models.Images[1], "--mask-rect", "0,4,8,4", "--sampler", "ddpm", "--steps", "4", "--resample", "2", "--jump", "2", "--out", Path.Combine(dir.Path, "i.png"));
        Assert.True(inpaint.Code == 0, inpaint.Err);
    }

    [Theory]
    [InlineData("encode")]
    [InlineData("decode")]
    [InlineData("interpolate")]
    [InlineData("edit")]
    [InlineData("inpaint")]
    public void EveryEditingCommandHasHelp(string command)
    {
        var help = Cli.Run(command, "--help");
        Assert.Equal(0, help.Code);
        Assert.Contains("--model", help.Out);
        Assert.Contains("--out", help.Out);
    }
}
