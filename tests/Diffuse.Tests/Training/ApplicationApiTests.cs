using Diffuse.Checkpoints;
using Diffuse.Configuration;
using Diffuse.Data;
using Diffuse.Runtime;
using Diffuse.Sampling;
using Diffuse.Schedules;
using Diffuse.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Tests.Training;

/// <summary>
/// The library as an application uses it: awaitable and cancellable training and sampling, events and logs, refusal to
/// overwrite, one loaded model sampled from several threads, and the defaults shared with the command line.
/// </summary>
public class ApplicationApiTests
{
    private static TrainingConfig Small(int steps, int checkpointEvery = 1000) =>
        new(Steps: steps, BatchSize: 64, LearningRate: 2e-3, WarmupSteps: 5, CheckpointEvery: checkpointEvery);

    private static Trainer NewTrainer(Tensor data, int steps, int checkpointEvery = 1000) =>
        Trainer.Create(data, "moons", Small(steps, checkpointEvery), new ScheduleConfig(ScheduleKind.Linear, 100),
            network: new Diffuse.Models.MlpConfig(2, Width: 32, Depth: 2, TimeEmbedding: 16));

    private static byte[] Bytes(Tensor t) => t.contiguous().bytes.ToArray();

    private static float[] Weights(Trainer trainer) =>
        trainer.Network.parameters().SelectMany(p => p.detach().flatten().data<float>().ToArray()).ToArray();

    [Fact]
    public async Task CancelledTrainingWritesItsStepAndResumesToTheUninterruptedRun()
    {
        using var dir = new TempDir();
        using var data = ToyData.Sample(ToyDistribution.Moons, 800, 0);
        using var full = NewTrainer(data, 20);
        full.Run();

        using var cancellation = new CancellationTokenSource();
        using (var trainer = NewTrainer(data, 20))
        {
            trainer.StepCompleted += (_, p) => { if (p.Step == 7) cancellation.Cancel(); };
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => trainer.RunAsync(dir.Path, cancellationToken: cancellation.Token));
            Assert.Equal(7, trainer.Step);
        }
        using (var model = DiffusionModel.Load(dir.Path)) Assert.Equal(7, model.Config.Step);
        using var resumed = Trainer.Resume(dir.Path, data);
        Assert.Equal(7, resumed.Step);
        await resumed.RunAsync(dir.Path);
        Assert.Equal(Weights(full), Weights(resumed));

        // The step logs hold each step once, in order, across the cancellation and the resume.
        var csv = File.ReadAllLines(Path.Combine(dir.Path, TrainingLog.CsvFile));
        Assert.Equal(TrainingLog.Header, csv[0]);
        Assert.Equal(Enumerable.Range(1, 20).Select(i => i.ToString()), csv.Skip(1).Select(l => l.Split(',')[0]));
        var losses = csv.Skip(1).Select(l => double.Parse(l.Split(',')[1], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(full.Losses.Select(l => l.Loss), losses);
        var json = File.ReadAllLines(Path.Combine(dir.Path, TrainingLog.JsonLinesFile));
        Assert.Equal(20, json.Length);
        using var last = System.Text.Json.JsonDocument.Parse(json[^1]);
        Assert.Equal(20, last.RootElement.GetProperty("step").GetInt32());
        Assert.Equal(4, last.RootElement.GetProperty("quartileLosses").GetArrayLength());
    }

    [Fact]
    public void EventsReportEveryStepAndEveryCheckpointAndProgressGoesThroughIProgress()
    {
        using var dir = new TempDir();
        using var data = ToyData.Sample(ToyDistribution.Moons, 500, 0);
        using var trainer = NewTrainer(data, 10, checkpointEvery: 4);
        var steps = new List<int>();
        var checkpoints = new List<int>();
        trainer.StepCompleted += (_, p) => steps.Add(p.Step);
        trainer.CheckpointWritten += (_, c) =>
        {
            checkpoints.Add(c.Step);
            Assert.Equal(dir.Path, c.Folder);
            Assert.True(File.Exists(Path.Combine(c.Folder, ModelFolder.ConfigFile)));
        };
        var reported = new List<int>();
        trainer.Run(p => reported.Add(p.Step), dir.Path);
        Assert.Equal(Enumerable.Range(1, 10), steps);
        Assert.Equal(steps, reported);
        Assert.Equal(new[] { 4, 8, 10 }, checkpoints);
    }

    [Fact]
    public void TrainingRefusesAFolderThatHoldsAnotherModelUnlessToldToOverwrite()
    {
        using var dir = new TempDir();
        using var data = ToyData.Sample(ToyDistribution.Moons, 500, 0);
        using (var first = NewTrainer(data, 3)) first.Run(folder: dir.Path);
        byte[] before = File.ReadAllBytes(Path.Combine(dir.Path, ModelFolder.WeightsFile));
        using var second = NewTrainer(data, 5);
        var e = Assert.Throws<DiffuseException>(() => second.Run(folder: dir.Path));
        Assert.Contains("already holds a model", e.Message);
        Assert.Equal(0, second.Step);
        Assert.Equal(before, File.ReadAllBytes(Path.Combine(dir.Path, ModelFolder.WeightsFile)));
        second.Run(folder: dir.Path, overwrite: true);
        using var model = DiffusionModel.Load(dir.Path);
        Assert.Equal(5, model.Config.Step);
        Assert.Equal(5, File.ReadAllLines(Path.Combine(dir.Path, TrainingLog.CsvFile)).Length - 1);
    }

    [Fact]
    public async Task SampleAsyncEqualsSampleAndCancellationFreesEveryTensor()
    {
        using var data = ToyData.Sample(ToyDistribution.Moons, 500, 0);
        using var trainer = NewTrainer(data, 30);
        trainer.Run();
        using var model = trainer.ToModel();
        var options = new SamplerOptions(SamplerKind.DpmSolver2M, 10, Spacing: SamplerSpacing.LogSnr);
        using var expected = model.Sample(300, 3, options);
        var progress = new List<SamplingProgress>();
        using var actual = await model.SampleAsync(300, 3, options, progress: new SynchronousProgress<SamplingProgress>(progress.Add));
        Assert.Equal(Bytes(expected), Bytes(actual));
        Assert.Equal(10, progress.Count);
        Assert.Equal(300, progress[^1].SamplesDone);
        Assert.Equal(1.0, progress[^1].Fraction, 12);

        long live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        using var cancellation = new CancellationTokenSource();
        int seen = 0;
        var e = Assert.ThrowsAny<OperationCanceledException>(() => model.Sample(300, 3, options, onStep: s =>
        {
            if (++seen == 4) cancellation.Cancel();
        }, cancellationToken: cancellation.Token));
        Assert.Equal(4, seen);
        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public async Task OneLoadedModelSampledFromSeveralThreadsGivesTheSequentialBytes()
    {
        using var data = ToyData.Sample(ToyDistribution.Moons, 500, 0);
        using var trainer = NewTrainer(data, 30);
        trainer.Run();
        using var model = trainer.ToModel();
        var options = new SamplerOptions(SamplerKind.Ddim, 20);
        var sequential = Enumerable.Range(0, 8).Select(seed =>
        {
            using var t = model.Sample(64, (ulong)seed, options);
            return Bytes(t);
        }).ToArray();
        var concurrent = await Task.WhenAll(Enumerable.Range(0, 8).Select(seed => Task.Run(() =>
        {
            using var t = model.Sample(64, (ulong)seed, options);
            return Bytes(t);
        })));
        for (int i = 0; i < 8; i++) Assert.Equal(sequential[i], concurrent[i]);
    }

    [Fact]
    public async Task TheShippedImageModelLoadsByNameSamplesWithTheCommandLineDefaultsAndIsThreadSafe()
    {
        Assert.Contains("fashion-mnist", ShippedModels.Names);
        using var model = DiffusionModel.Load("fashion-mnist");
        Assert.Equal(SamplingDefaults.Image, model.DefaultSampler.Options);
        Assert.Contains("the default for images", model.DefaultSampler.Description);
        var fast = new SamplerOptions(SamplerKind.DpmSolver2M, 4, Spacing: SamplerSpacing.LogSnr);
        long[] sneakers = { 7, 7 };
        using var sequentialA = model.SampleImages(2, 11, fast, classes: sneakers);
        using var sequentialB = model.SampleImages(2, 12, fast, classes: sneakers);
        var both = await Task.WhenAll(
            model.SampleImagesAsync(2, 11, fast, classes: sneakers),
            model.SampleImagesAsync(2, 12, fast, classes: sneakers));
        try
        {
            Assert.Equal(Bytes(sequentialA), Bytes(both[0]));
            Assert.Equal(Bytes(sequentialB), Bytes(both[1]));
        }
        finally
        {
            foreach (var t in both) t.Dispose();
        }
        // Guidance defaults to the command line's 1.5, not to the plain conditional model.
        using var guided = model.SampleImages(2, 11, fast, classes: sneakers, guidance: SamplingDefaults.Guidance);
        Assert.Equal(Bytes(guided), Bytes(sequentialA));
    }

    [Fact]
    public void ThreadsFollowTheModelKindUnlessFixed()
    {
        int before = torch.get_num_threads();
        string? env = Environment.GetEnvironmentVariable(TorchThreads.EnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(TorchThreads.EnvironmentVariable, null);
            Assert.Equal(1, TorchThreads.DefaultFor(imageModel: false));
            Assert.Equal(Environment.ProcessorCount, TorchThreads.DefaultFor(imageModel: true));
            TorchThreads.Fixed = 1;
            Assert.Equal(1, TorchThreads.For(imageModel: true));
            TorchThreads.Fixed = null;
            Environment.SetEnvironmentVariable(TorchThreads.EnvironmentVariable, "3");
            Assert.Equal(3, TorchThreads.For(imageModel: false));
            Environment.SetEnvironmentVariable(TorchThreads.EnvironmentVariable, "many");
            Assert.Contains("DIFFUSE_THREADS", Assert.Throws<DiffuseException>(() => TorchThreads.For(false)).Message);
            Assert.Throws<DiffuseException>(() => TorchThreads.Fixed = 0);
        }
        finally
        {
            TorchThreads.Fixed = null;
            Environment.SetEnvironmentVariable(TorchThreads.EnvironmentVariable, env);
            TorchThreads.Set(before);
        }
    }

    [Fact]
    public void ImageTrainingRaisesPreviewsFromFixedSeedsOnlyWhenSomeoneListens()
    {
        using var images = ImageTrainerTests.TwoClassImages(24);
        using var trainer = Trainer.Create(images, new TrainingConfig(Steps: 4, BatchSize: 8, LearningRate: 2e-3, WarmupSteps: 1),
            new ScheduleConfig(ScheduleKind.Linear, 50), network: ImageTrainerTests.TinyUNet(2));
        Assert.Equal(1000, trainer.PreviewEvery);
        trainer.PreviewEvery = 2;
        var previews = new List<(int Step, long[] Shape, string[]? Rows)>();
        trainer.PreviewReady += (_, e) => previews.Add((e.Step, e.Images.shape, e.RowLabels?.ToArray()));
        trainer.Run();
        Assert.Equal(new[] { 2, 4 }, previews.Select(p => p.Step));
        Assert.Equal(new long[] { 2 * Trainer.PreviewColumns, 1, 8, 8 }, previews[0].Shape);
        Assert.Equal(new[] { "top", "bottom" }, previews[0].Rows);
    }

    [Fact]
    public void ImageTrainingWithoutSettingsUsesTheImageDefaults()
    {
        using var images = ImageTrainerTests.TwoClassImages(16);
        using var trainer = Trainer.Create(images, network: ImageTrainerTests.TinyUNet(2));
        Assert.Equal(TrainingConfig.Images, trainer.Config.Training);
        Assert.Equal(128, trainer.Config.Training.BatchSize);
    }

    /// <summary>An <see cref="IProgress{T}"/> that reports on the caller's thread (unlike <see cref="Progress{T}"/>).</summary>
    private sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
