using System.Text.Json.Nodes;
using Diffuse.Tests.Training;
using static Diffuse.Tests.Cli.Cli;

namespace Diffuse.Tests.Cli;

/// <summary><c>diffuse train --formulation …</c>, <c>--learn-variance</c> and their options.</summary>
public class FormulationCommandTests
{
    private static readonly string[] Tiny = { "--batch", "64", "--width", "16", "--depth", "1", "--timesteps", "50", "--count", "500" };

    private static (int Code, string Out, string Err) Train(string model, int steps, params string[] extra) =>
        Run(new[] { "train", "--data", "moons", "--out", model, "--steps", steps.ToString(System.Globalization.CultureInfo.InvariantCulture) }
            .Concat(Tiny).Concat(extra).ToArray());

    private static JsonNode Formulation(string model) => JsonNode.Parse(File.ReadAllText(Path.Combine(model, "config.json")))!["formulation"]!;

    [Fact]
    public void OptionsThatDoNotFitTheFormulationAreOneLineErrors()
    {
        using var dir = new TempDir();
        string model = Path.Combine(dir.Path, "m");
        AssertUserError(Train(model, 1, "--formulation", "score"), "--formulation must be one of ddpm, edm");
        AssertUserError(Train(model, 1, "--formulation", "edm", "--learn-variance"), "Drop --learn-variance");
        AssertUserError(Train(model, 1, "--formulation", "edm", "--prediction", "v"), "drop --prediction");
        AssertUserError(Train(model, 1, "--formulation", "edm", "--schedule", "cosine"), "drop --schedule");
        AssertUserError(Train(model, 1, "--formulation", "edm", "--zero-terminal-snr"), "drop --zero-terminal-snr");
        AssertUserError(Train(model, 1, "--formulation", "edm", "--min-snr", "5"), "drop --min-snr");
        AssertUserError(Train(model, 1, "--formulation", "edm", "--sigma-data", "0"), "σ_data must be positive");
        AssertUserError(Train(model, 1, "--sigma-data", "0.5"), "--sigma-data sets EDM's training", "--formulation edm");
        AssertUserError(Train(model, 1, "--hybrid-lambda", "0.01"), "--hybrid-lambda", "add --learn-variance");
        AssertUserError(Train(model, 1, "--importance-sampling"), "--importance-sampling", "add --learn-variance");
        AssertUserError(Train(model, 1, "--learn-variance", "--hybrid-lambda", "-1"), "--hybrid-lambda must be a positive number");
        AssertUserError(Train(model, 1, "--formulation", "flow", "--sigma-data", "0.5"), "--sigma-data sets EDM's training", "--formulation edm");
        AssertUserError(Train(model, 1, "--formulation", "flow", "--schedule", "cosine"), "drop --schedule");
        AssertUserError(Train(model, 1, "--formulation", "flow", "--prediction", "x0"), "velocity", "drop --prediction");
        Assert.False(Directory.Exists(model) && File.Exists(Path.Combine(model, "config.json")));

        Assert.Equal(0, Train(model, 2).Code);
        AssertUserError(Train(model, 3, "--resume", "--formulation", "edm"), "--formulation is fixed when a run starts");
    }

    [Fact]
    public void AFlowModelTrainsResumesSamplesAndIsEvaluatedFromTheCommandLine()
    {
        using var dir = new TempDir();
        string flow = Path.Combine(dir.Path, "flow");
        var trained = Train(flow, 10, "--formulation", "flow");
        Assert.True(trained.Code == 0, trained.Err);
        var formulation = Formulation(flow);
        Assert.Equal("flow", (string?)formulation["kind"]);
        Assert.Equal(1.0, (double)formulation["flow"]!["logitStd"]!);
        Assert.True(Train(flow, 12, "--resume").Code == 0);
        string csv = Path.Combine(dir.Path, "s.csv");
        var sampled = Run("sample", "--model", flow, "--count", "20", "--out", csv, "--sampler", "dpm++2m", "--steps", "5");
        Assert.True(sampled.Code == 0, sampled.Err);
        Assert.Equal(20, Diffuse.Data.CsvTable.Load(csv).Rows);
        var evaluated = Run("eval", "--model", flow, "--data", "moons", "--count", "200", "--nll", "--method", "ode", "--ode-steps", "5");
        Assert.True(evaluated.Code == 0, evaluated.Err);
        Assert.Contains("nats/dim", evaluated.Out);
    }

    [Fact]
    public void EdmAndLearnedVarianceModelsTrainResumeAndSampleFromTheCommandLine()
    {
        using var dir = new TempDir();
        string edm = Path.Combine(dir.Path, "edm");
        var trained = Train(edm, 20, "--formulation", "edm", "--sigma-data", "0.8", "--p-mean", "-1", "--p-std", "1.5");
        Assert.True(trained.Code == 0, trained.Err);
        var formulation = Formulation(edm);
        Assert.Equal("edm", (string?)formulation["kind"]);
        Assert.Equal(0.8, (double)formulation["edm"]!["sigmaData"]!);
        Assert.Equal(-1.0, (double)formulation["edm"]!["pMean"]!);
        Assert.Equal(1.5, (double)formulation["edm"]!["pStd"]!);
        string csv = Path.Combine(dir.Path, "s.csv");
        var sampled = Run("sample", "--model", edm, "--count", "20", "--out", csv, "--sampler", "heun", "--sigmas", "karras", "--steps", "5");
        Assert.True(sampled.Code == 0, sampled.Err);
        Assert.Equal(20, Diffuse.Data.CsvTable.Load(csv).Rows);

        string learned = Path.Combine(dir.Path, "learned");
        trained = Train(learned, 10, "--learn-variance", "--importance-sampling", "--hybrid-lambda", "0.01");
        Assert.True(trained.Code == 0, trained.Err);
        Assert.True((bool)Formulation(learned)["importanceSampling"]!);
        Assert.Equal(0.01, (double)Formulation(learned)["hybridLambda"]!);
        var resumed = Train(learned, 15, "--resume");
        Assert.True(resumed.Code == 0, resumed.Err);
        Assert.Contains("trained 15 steps", resumed.Out);
        var evaluated = Run("eval", "--model", learned, "--data", "moons", "--count", "200", "--nll", "--sampler", "ddpm", "--steps", "10");
        Assert.True(evaluated.Code == 0, evaluated.Err);
    }
}
