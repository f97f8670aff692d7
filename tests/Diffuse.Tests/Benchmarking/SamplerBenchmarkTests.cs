using Diffuse.Benchmarking;
using Diffuse.Configuration;
using Diffuse.Data;
using Diffuse.Evaluation.SampleQuality;
using Diffuse.Sampling;
using Diffuse.Schedules;
using Diffuse.Training;

namespace Diffuse.Tests.Benchmarking;

public class SamplerBenchmarkTests
{
    [Fact]
    public void WorkReportsAddUpToEachSettingsEvaluationsAndTheOdeLimitHasItsOwnSteps()
    {
        using var data = ToyData.Sample(ToyDistribution.Moons, 600, 0);
        using var heldOut = ToyData.Sample(ToyDistribution.Moons, 300, 1);
        using var trainer = Trainer.Create(data, "moons", new TrainingConfig(Steps: 5, BatchSize: 64, WarmupSteps: 1, CheckpointEvery: 1000),
            new ScheduleConfig(ScheduleKind.Linear, 100), network: new Diffuse.Models.MlpConfig(2, Width: 16, Depth: 1, TimeEmbedding: 8));
        trainer.Run();
        using var model = trainer.ToModel();
        // Heun costs two evaluations per step but the last; 4,100 samples make two batches of the table batch size.
        const int count = DiffusionModel.DefaultTableBatch + 4;
        var options = new SamplerBenchmarkOptions(new[] { 4, 8 }, new[] { SamplerKind.Ddim, SamplerKind.Heun }, new[] { SamplerSpacing.Trailing, SamplerSpacing.Karras },
            count, Seed: 3, ReferenceSteps: 10, OdeLimitSteps: 6);
        var metric = new KdeScoreMetric(data, heldOut);

        var work = new List<SamplerBenchmarkWork>();
        var atEachSetting = new List<(double Evaluations, SamplerRun Run)>();
        var result = SamplerBenchmark.Run(model, metric, options,
            p => atEachSetting.Add((work.Count == 0 ? 0 : work[^1].Evaluations, p.Run)), work: w => work.Add(w));

        Assert.Equal(10, result.Reference.Setting.Steps);
        Assert.Equal(SamplerKind.Ddpm, result.Reference.Setting.Kind);
        Assert.Equal(6, result.OdeLimit.Setting.Steps);
        Assert.Equal(SamplerKind.Ddim, result.OdeLimit.Setting.Kind);
        Assert.Contains(result.Runs, r => r.Setting.Kind == SamplerKind.Heun && r.FunctionEvaluations != r.Setting.Steps);

        // Every step of every batch was reported: when a setting is done, the work reported so far is exactly the
        // evaluations of the settings measured so far (evaluations per sample × count).
        double expected = 0;
        foreach (var (evaluations, run) in atEachSetting)
        {
            expected += (double)run.FunctionEvaluations * count;
            Assert.Equal(expected, evaluations, 6);
        }
        Assert.Equal(SamplerBenchmark.Settings(model.Schedule, options).Count, atEachSetting.Count);
        Assert.Equal(expected, SamplerBenchmark.TotalEvaluations(model.Schedule, options), 6);
        Assert.All(work, w => Assert.Equal(expected, w.Total, 6));
        for (int i = 1; i < work.Count; i++) Assert.True(work[i].Evaluations > work[i - 1].Evaluations);
        Assert.Equal(Enumerable.Range(1, atEachSetting.Count), work.Select(w => w.Index).Distinct());

        // Given every measurement, a second run draws nothing and concludes the same.
        var known = atEachSetting.Select(a => a.Run).ToList();
        Assert.Equal(0, SamplerBenchmark.TotalEvaluations(model.Schedule, options, known));
        var reports = new List<SamplerBenchmarkProgress>();
        int steps = 0;
        var again = SamplerBenchmark.Run(model, metric, options, reports.Add, work: _ => steps++, known: known);
        Assert.Equal(0, steps);
        Assert.All(reports, r => Assert.True(r.Reused));
        Assert.Equal(result.Best.Select(r => (r.Setting, r.Budget, r.Quality.Value)), again.Best.Select(r => (r.Setting, r.Budget, r.Quality.Value)));
        Assert.Equal(result.DefaultBudget, again.DefaultBudget);
    }
}
