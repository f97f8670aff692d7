using Diffuse.Configuration;
using Diffuse.Data.Images;
using Diffuse.Models;
using Diffuse.Parameterization;
using Diffuse.Schedules;
using Diffuse.Tests.Cli;
using Diffuse.Tests.Data;
using Diffuse.Tests.ImageData;
using Diffuse.Training;
using SkiaSharp;
using static TorchSharp.torch;
using CliRunner = Diffuse.Tests.Cli.Cli;

namespace Diffuse.Tests.Training;

/// <summary>
/// Colour end to end: red and blue emoji of a fake package through loading, the [−1, 1] mapping, class-conditional
/// training, sampling, and the PNG, grid and GIF writers, each checked by decoding what was written.
/// </summary>
public sealed class ColourPipelineTests : IDisposable
{
    private readonly TempFolder folder = new();

    public void Dispose() => folder.Dispose();

    private static readonly SKColor Red = new(255, 0, 0);
    private static readonly SKColor Blue = new(0, 0, 255);
    private static int Symbols => EmojiDatasets.Categories.ToList().IndexOf("Symbols");
    private static int Flags => EmojiDatasets.Categories.ToList().IndexOf("Flags");

    private static bool IsRed(SKColor c) => c.Red > 180 && c.Green < 80 && c.Blue < 80;
    private static bool IsBlue(SKColor c) => c.Blue > 180 && c.Red < 80 && c.Green < 80;

    /// <summary>Trains a tiny conditional U-Net (x0-prediction, 4×4 RGB) on red Symbols and blue Flags; returns its folder.</summary>
    private string TrainRedAndBlue()
    {
        var emoji = Enumerable.Range(0, 16).Select(i => ($"RED {i}", "Symbols", Red))
            .Concat(Enumerable.Range(0, 16).Select(i => ($"BLUE {i}", "Flags", Blue)));
        string package = EmojiDatasetsTests.WriteSolidPackage(folder.File("package"), emoji);
        string cache = folder.File("cache");
        EmojiDatasets.Convert(EmojiDatasetsTests.Small, package, 4, EmojiDatasets.CacheFolder("emoji", 4, cache), null, TimeSpan.Zero);
        using var images = EmojiDatasets.LoadPackage(EmojiDatasetsTests.Small, DatasetSplit.Train, 4, cache, null, npm: "/nonexistent/npm");

        // Loading: RGB bytes in channel order; the model range maps each channel on its own (255 → 1, 0 → −1).
        int red = Array.IndexOf(images.Labels!, (long)Symbols);
        using (var first = images.Batch([red]))
        using (var range = ImageDataset.ToModelRange(first))
        {
            Assert.Equal(new float[] { 1, -1, -1 }, range[0, TensorIndex.Ellipsis, 0, 0].data<float>().ToArray());
            Assert.Equal(new byte[] { 255, 0, 0 }, first[0, TensorIndex.Ellipsis, 2, 3].data<byte>().ToArray());
        }

        var network = new UNetConfig
        {
            Channels = 3, BaseChannels = 8, ChannelMultipliers = [1, 2], BlocksPerLevel = 1, AttentionResolutions = [], Heads = 2,
            NumClasses = EmojiDatasets.Categories.Count,
        };
        using var trainer = Trainer.Create(images, new TrainingConfig(Steps: 150, BatchSize: 16, LearningRate: 3e-3, WarmupSteps: 5, CheckpointEvery: 1000),
            new ScheduleConfig(ScheduleKind.Linear, 50), Prediction.X0, network);
        Assert.Contains("CC-BY 4.0", trainer.Config.Data.Licence);
        string model = folder.File("model");
        trainer.Run(folder: model);
        return model;
    }

    private static SKColor[] Pixels(SKBitmap bitmap) => Enumerable.Range(0, bitmap.Width * bitmap.Height)
        .Select(p => bitmap.GetPixel(p % bitmap.Width, p / bitmap.Width)).ToArray();

    /// <summary>The last frame of a GIF, decoded by SkiaSharp.</summary>
    private static SKBitmap LastFrame(string gif)
    {
        using var codec = SKCodec.Create(gif);
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var bitmap = new SKBitmap(info);
        // Each frame draws over the one before (disposal "leave in place"): decode them in order into one bitmap.
        for (int i = 0; i < codec.FrameCount; i++)
            Assert.Equal(SKCodecResult.Success, codec.GetPixels(info, bitmap.GetPixels(), new SKCodecOptions(i, i - 1)));
        return bitmap;
    }

    [Fact]
    public void RedComesBackRedAndBlueBlueInSamplesPngsGridsAndGifs()
    {
        string model = TrainRedAndBlue();
        using (var loaded = DiffusionModel.Load(model))
        using (var samples = loaded.SampleImages(4, 0, new Diffuse.Sampling.SamplerOptions(Diffuse.Sampling.SamplerKind.Ddim, 10),
                   classes: [Symbols, Symbols, Flags, Flags], guidance: 1.0))
        {
            var mean = samples.to_type(ScalarType.Float32).mean([2, 3]).data<float>().ToArray();
            Assert.True(mean[0] > 200 && mean[1] < 50 && mean[2] < 50, $"red sample: mean RGB {mean[0]}, {mean[1]}, {mean[2]}");
            Assert.True(mean[9] < 50 && mean[10] < 50 && mean[11] > 200, $"blue sample: mean RGB {mean[9]}, {mean[10]}, {mean[11]}");
        }

        foreach (var (kind, isColour, isOther) in new[] { (Symbols, (Func<SKColor, bool>)IsRed, (Func<SKColor, bool>)IsBlue), (Flags, IsBlue, IsRed) })
        {
            string pngs = folder.File($"pngs{kind}"), grid = folder.File($"grid{kind}.png"), gif = folder.File($"reverse{kind}.gif");
            string k = kind.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var one = CliRunner.Run("sample", "--model", model, "--out", pngs, "--count", "2", "--class", k, "--guidance", "1", "--sampler", "ddim", "--steps", "10");
            Assert.True(one.Code == 0, one.Err);
            foreach (string png in Directory.GetFiles(pngs))
            {
                using var image = SKBitmap.Decode(png);
                Assert.Equal((4, 4), (image.Width, image.Height));
                Assert.All(Pixels(image), p => Assert.True(isColour(p), $"{Path.GetFileName(png)}: {p}"));
            }

            var sample = CliRunner.Run("sample", "--model", model, "--out", grid, "--animation", gif, "--count", "4", "--class", k,
                "--guidance", "1", "--sampler", "ddim", "--steps", "10", "--scale", "3");
            Assert.True(sample.Code == 0, sample.Err);
            // Two columns of 12-pixel cells (4 pixels × scale 3) with 2-pixel padding.
            using var gridImage = SKBitmap.Decode(grid);
            Assert.Equal((30, 30), (gridImage.Width, gridImage.Height));
            Assert.Equal(4 * 12 * 12, Pixels(gridImage).Count(isColour));
            using var last = LastFrame(gif);
            Assert.Equal(30, last.Width);
            Assert.True(last.Height > 30, "the caption band sits above the grid");
            Assert.Equal(4 * 12 * 12, Pixels(last).Count(isColour));
            Assert.DoesNotContain(Pixels(last), c => isOther(c));
        }
    }

    [Fact]
    public void ScaleOutOfRangeIsAClearError()
    {
        string model = Path.Combine(AppContext.BaseDirectory, "models", "fashion-mnist");
        CliRunner.AssertUserError(CliRunner.Run("sample", "--model", model, "--out", folder.File("g.png"), "--scale", "0"), "--scale", "1 to 16");
    }
}
