using Diffuse.Configuration;
using Diffuse.Data.Images;
using Diffuse.Denoisers;
using Diffuse.Models;
using Diffuse.Sampling;
using Diffuse.Schedules;
using Diffuse.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Tests.Training;

/// <summary>The shared trainer on images: labels, guidance, accumulation, determinism and resume, on tiny U-Nets.</summary>
public class ImageTrainerTests
{
    /// <summary>Two classes of 8×8 grayscale images: bright top half (class 0) or bright bottom half (class 1), with noise.</summary>
    internal static ImageDataset TwoClassImages(int count = 64, int seed = 0)
    {
        var random = new Random(seed);
        var pixels = new byte[count * 64];
        var labels = new long[count];
        for (int i = 0; i < count; i++)
        {
            labels[i] = i % 2;
            for (int y = 0; y < 8; y++)
                for (int x = 0; x < 8; x++)
                {
                    bool bright = labels[i] == 0 ? y < 4 : y >= 4;
                    pixels[i * 64 + y * 8 + x] = (byte)Math.Clamp((bright ? 220 : 30) + random.Next(-20, 21), 0, 255);
                }
        }
        return ImageDataset.FromPixels(pixels, 1, 8, 8, labels, new[] { "top", "bottom" }, "two-class test images");
    }

    internal static UNetConfig TinyUNet(int classes) => new()
    {
        Channels = 1, BaseChannels = 8, ChannelMultipliers = [1, 2], BlocksPerLevel = 1, AttentionResolutions = [], Heads = 2,
        Dropout = 0.1, NumClasses = classes,
    };

    private static TrainingConfig Settings(int steps, int accumulate = 1) =>
        new(Steps: steps, BatchSize: 12, LearningRate: 2e-3, WarmupSteps: 2, CheckpointEvery: 1000, GradientAccumulation: accumulate, HorizontalFlip: true);

    private static Trainer NewTrainer(ImageDataset images, int steps, int accumulate = 1, UNetConfig? network = null) =>
        Trainer.Create(images, Settings(steps, accumulate), new ScheduleConfig(ScheduleKind.Linear, 50), network: network ?? TinyUNet(2));

    private static float[] Weights(Trainer trainer) =>
        trainer.Network.parameters().SelectMany(p => p.detach().flatten().data<float>().ToArray()).ToArray();

    [Fact]
    public void GradientAccumulationGivesTheSameStepsAsOnePass()
    {
        using var images = TwoClassImages();
        // Without dropout the micro-batches see exactly the examples, timesteps, noise, flips and labels of the whole batch.
        var network = TinyUNet(2) with { Dropout = 0 };
        using var whole = NewTrainer(images, 4, network: network);
        using var parts = NewTrainer(images, 4, accumulate: 3, network: network);
        whole.Run();
        parts.Run();
        var a = Weights(whole);
        var b = Weights(parts);
        Assert.Equal(a.Length, b.Length);
        for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) < 2e-5f, $"weight {i}: {a[i]} vs {b[i]}");
        for (int s = 0; s < 4; s++) Assert.Equal(whole.Losses[s].Loss, parts.Losses[s].Loss, 5);
    }

    [Fact]
    public void AConditionalRunResumesExactlyAndItsModelSamplesEachClassDeterministically()
    {
        using var dir = new TempDir();
        using var images = TwoClassImages();
        using var full = NewTrainer(images, 8);
        full.Run();
        using (var first = NewTrainer(images, 8)) first.Run(folder: dir.Path, stopAtStep: 5);
        using var resumed = Trainer.Resume(dir.Path, images);
        resumed.Run(folder: dir.Path);
        Assert.Equal(Weights(full), Weights(resumed));
        Assert.Equal(full.QuartileLosses.Count, resumed.QuartileLosses.Count);
        Assert.All(resumed.QuartileLosses, q => Assert.Equal(Trainer.Quartiles, q.Length));

        using var model = DiffusionModel.Load(dir.Path);
        Assert.True(model.IsImage);
        Assert.Equal(new[] { "top", "bottom" }, model.ClassNames);
        Assert.Equal(new long[] { 1, 8, 8 }, model.ExampleShape);
        var options = new SamplerOptions(SamplerKind.Ddim, 5);
        long[] classes = { 0, 1, 1, 0, 1 };
        using var all = model.Sample(5, 3, options, classes: classes, guidance: 2);
        Assert.Equal(new long[] { 5, 1, 8, 8 }, all.shape);
        Assert.True(all.abs().max().item<float>() <= 1f);
        // Sample i depends only on (seed, i, its class): batches of 2 give the same images as one batch of 5.
        using var batched = model.Sample(5, 3, options, classes: classes, guidance: 2, batchSize: 2);
        Assert.True(all.allclose(batched, rtol: 0, atol: 1e-5));
        using var tail = model.Sample(2, 3, options, first: 3, classes: new long[] { 0, 1 }, guidance: 2);
        Assert.True(all.narrow(0, 3, 2).allclose(tail, rtol: 0, atol: 1e-5));
        using var bytes = model.SampleImages(2, 3, options, classes: new long[] { 0, 1 });
        Assert.Equal(ScalarType.Byte, bytes.dtype);

        Assert.Contains("class 7 does not exist", Assert.Throws<DiffuseException>(() => model.Sample(1, 0, options, classes: new long[] { 7 })).Message);
        using var other = TwoClassImages(seed: 1);
        Assert.Contains("not the images", Assert.Throws<DiffuseException>(() => Trainer.Resume(dir.Path, other)).Message);
    }

    [Fact]
    public void GuidanceCombinesTheConditionalAndUnconditionalPredictionsOfTheNetwork()
    {
        using var images = TwoClassImages();
        using var trainer = NewTrainer(images, 3);
        trainer.Run();
        var schedule = trainer.Schedule;
        var denoiser = new NetworkDenoiser(trainer.Ema, schedule, trainer.Config.Prediction);
        using var scope = NewDisposeScope();
        var z = randn(4, 1, 8, 8, generator: new TorchSharp.torch.Generator(5));
        var classes = tensor(new long[] { 0, 1, 0, 1 });
        var conditional = denoiser.Denoise(z, 20, classes).Eps;
        var unconditional = denoiser.Denoise(z, 20).Eps;
        Assert.False(conditional.allclose(unconditional, rtol: 0, atol: 1e-6), "the class embedding should change the prediction");
        Assert.True(new ClassifierFreeGuidance(denoiser, classes, 0).Denoise(z, 20).Eps.allclose(unconditional, rtol: 0, atol: 1e-6));
        Assert.True(new ClassifierFreeGuidance(denoiser, classes, 1).Denoise(z, 20).Eps.allclose(conditional, rtol: 0, atol: 1e-6));
        foreach (double w in new[] { 0.5, 3.0 })
        {
            var expected = unconditional + w * (conditional - unconditional);
            Assert.True(new ClassifierFreeGuidance(denoiser, classes, w).Denoise(z, 20).Eps.allclose(expected, rtol: 0, atol: 1e-5), $"w = {w}");
        }
    }

    [Fact]
    public void MismatchedClassesAndUnlabelledImagesAreClearErrors()
    {
        using var images = TwoClassImages(8);
        Assert.Contains("has 2", Assert.Throws<DiffuseException>(() => NewTrainer(images, 1, network: TinyUNet(3))).Message);
        using var unlabelled = ImageDataset.FromPixels(new byte[8 * 64], 1, 8, 8, null, Array.Empty<string>(), "unlabelled");
        Assert.Contains("no labels", Assert.Throws<DiffuseException>(() => NewTrainer(unlabelled, 1, network: TinyUNet(2))).Message);
        // Unlabelled images train an unconditional network by default.
        using var trainer = Trainer.Create(unlabelled, Settings(1), new ScheduleConfig(ScheduleKind.Linear, 50), network: TinyUNet(0));
        trainer.Run();
        Assert.Equal(0, trainer.Network.ClassCount);
    }

    [Fact]
    public void ImageTrainingKeepsNativeMemoryFlat()
    {
        using var images = TwoClassImages();
        using var trainer = NewTrainer(images, 40, accumulate: 2);
        for (int i = 0; i < 5; i++) trainer.TrainStep();
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 20; i++) trainer.TrainStep();
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        using var model = trainer.ToModel();
        model.Sample(4, 1, new SamplerOptions(SamplerKind.DpmSolver2M, 4), classes: new long[] { 0, 1, 0, 1 }, guidance: 2).Dispose();
        long beforeSampling = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 3; i++) model.Sample(4, 1, new SamplerOptions(SamplerKind.DpmSolver2M, 4), classes: new long[] { 0, 1, 0, 1 }, guidance: 2).Dispose();
        Assert.Equal(beforeSampling, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}
