using static Diffuse.Tests.Cli.Cli;
using Diffuse.Cli;
using Diffuse.Tests.Training;

namespace Diffuse.Tests.Cli;

public class OdeLikelihoodCommandTests
{
    [Fact]
    public void EvalNllMethodOdePrintsTheMethodItsSettingsAndTheLikelihood()
    {
        using var dir = new TempDir();
        string model = Path.Combine(dir.Path, "model");
        var train = Run("train", "--data", "moons", "--out", model, "--steps", "30", "--batch", "64", "--width", "16", "--depth", "1", "--timesteps", "50", "--count", "500");
        Assert.True(train.Code == 0, train.Err);

        var ode = Run("eval", "--model", model, "--data", "moons", "--count", "100", "--sampler", "ddim", "--steps", "5", "--nll", "--method", "ode", "--ode-steps", "4", "--hutchinson", "2");
        Assert.True(ode.Code == 0, ode.Err);
        Assert.Contains("nll method: ode", ode.Out);
        Assert.Contains("RK4, 4 steps", ode.Out);
        Assert.Contains("2 rademacher probes", ode.Out);
        Assert.Contains("ODE negative log-likelihood of held-out data", ode.Out);
        Assert.Contains("16 network evaluations per point", ode.Out);

        var exact = Run("eval", "--model", model, "--data", "moons", "--count", "100", "--sampler", "ddim", "--steps", "5", "--nll", "--method", "ode", "--adaptive", "--rtol", "1e-3", "--atol", "1e-3", "--exact-trace");
        Assert.True(exact.Code == 0, exact.Err);
        Assert.Contains("Dormand–Prince", exact.Out);
        Assert.Contains("exact trace", exact.Out);

        var vlb = Run("eval", "--model", model, "--data", "moons", "--count", "100", "--sampler", "ddim", "--steps", "5", "--nll");
        Assert.True(vlb.Code == 0, vlb.Err);
        Assert.Contains("nll method: vlb", vlb.Out);
        Assert.Contains("variational bound", vlb.Out);
    }

    [Fact]
    public void OdeOptionsThatDoNotFitAreUserErrors()
    {
        AssertUserError(Run("eval", "--model", "x", "--data", "moons", "--method", "ode"), "give --nll too");
        AssertUserError(Run("eval", "--model", "x", "--data", "moons", "--nll", "--method", "exact"), "vlb or ode");
        AssertUserError(Run("eval", "--model", "x", "--data", "moons", "--nll", "--ode-steps", "10"), "apply to --method ode");
        AssertUserError(Run("eval", "--model", "x", "--data", "moons", "--nll", "--method", "ode", "--nll-variance", "small"), "--nll-variance");
        AssertUserError(Run("eval", "--model", "x", "--data", "moons", "--nll", "--method", "ode", "--rtol", "1e-3"), "--adaptive");
        AssertUserError(Run("eval", "--model", "x", "--data", "moons", "--nll", "--method", "ode", "--exact-trace", "--hutchinson", "3"), "--exact-trace");
        AssertUserError(Run("eval", "--model", "x", "--data", "moons", "--nll", "--method", "ode", "--ode-steps", "0"), "at least one solver step");
    }
}
